//! `metav1.Condition` bookkeeping shared by the controllers that write status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition, keeping its lastTransitionTime when its status does not change.
pub fn condition(
    existing: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = existing
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// Whether `existing` already says exactly what `wanted` says, type by type (the
/// transition time aside) and has no condition of a type `wanted` drops.
pub fn unchanged(existing: &[Condition], wanted: &[Condition], owned: &[&str]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut have: Vec<_> = existing
        .iter()
        .filter(|c| owned.contains(&c.type_.as_str()))
        .map(key)
        .collect();
    let mut want: Vec<_> = wanted.iter().map(key).collect();
    have.sort();
    want.sort();
    have == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_survives_and_changes_are_seen() {
        let first = condition(&[], "Ready", false, "Pending", "wait", Some(1));
        let mut old = first.clone();
        old.last_transition_time = Time("2020-01-01T00:00:00Z".parse().unwrap());
        let again = condition(
            &[old.clone()],
            "Ready",
            false,
            "Pending",
            "wait more",
            Some(1),
        );
        assert_eq!(again.last_transition_time, old.last_transition_time);
        let flipped = condition(&[old.clone()], "Ready", true, "Exported", "ok", Some(1));
        assert_ne!(flipped.last_transition_time, old.last_transition_time);
        assert!(unchanged(
            &[old.clone()],
            std::slice::from_ref(&first),
            &["Ready"]
        ));
        assert!(!unchanged(&[old.clone()], &[again], &["Ready"]));
        assert!(
            !unchanged(&[old], &[], &["Ready"]),
            "a dropped condition is a change"
        );
        assert!(unchanged(&[], &[], &["Ready"]));
    }
}
