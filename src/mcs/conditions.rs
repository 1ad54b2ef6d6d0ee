//! `metav1.Condition` bookkeeping shared by the controllers that write status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::runtime::events::EventType;

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

/// Whether an event should tell of a condition becoming `after`, and as which type:
/// problems as warnings, and the good news that ends them or the export's arrival.
/// Nothing when the condition keeps its status and reason, or merely waits.
pub fn noteworthy(before: &[Condition], after: &Condition) -> Option<EventType> {
    let before = before.iter().find(|c| c.type_ == after.type_);
    if before.is_some_and(|b| b.status == after.status && b.reason == after.reason) {
        return None;
    }
    let was_problem = before.is_some_and(|b| is_problem(&b.type_, &b.status, &b.reason));
    if is_problem(&after.type_, &after.status, &after.reason) {
        Some(EventType::Warning)
    } else if was_problem || (after.type_ == "Ready" && after.status == "True") {
        Some(EventType::Normal)
    } else {
        None
    }
}

/// An export's condition that a person has to do something about.
fn is_problem(type_: &str, status: &str, reason: &str) -> bool {
    match (type_, status) {
        ("Valid", "False") | ("Conflict", "True") => true,
        ("Ready", "False") => reason == "Failed",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(before: &[Condition], type_: &str, status: bool, reason: &str) -> Option<EventType> {
        noteworthy(before, &condition(before, type_, status, reason, "", None))
    }

    #[test]
    fn events_tell_of_problems_and_their_end() {
        use EventType::{Normal, Warning};
        // The first look at an export.
        assert_eq!(said(&[], "Valid", true, "Valid"), None);
        assert_eq!(said(&[], "Valid", false, "NoService"), Some(Warning));
        assert_eq!(said(&[], "Ready", false, "Pending"), None);
        assert_eq!(said(&[], "Conflict", false, "NoConflicts"), None);
        // Changes.
        let invalid = [condition(&[], "Valid", false, "NoService", "", None)];
        assert_eq!(
            said(&invalid, "Valid", false, "NoService"),
            None,
            "no change"
        );
        assert_eq!(
            said(&invalid, "Valid", false, "InvalidServiceType"),
            Some(Warning)
        );
        assert_eq!(said(&invalid, "Valid", true, "Valid"), Some(Normal));
        let pending = [condition(&[], "Ready", false, "Pending", "", None)];
        assert_eq!(said(&pending, "Ready", true, "Exported"), Some(Normal));
        assert_eq!(said(&pending, "Ready", false, "Failed"), Some(Warning));
        let ready = [condition(&[], "Ready", true, "Exported", "", None)];
        assert_eq!(said(&ready, "Ready", false, "Pending"), None);
        let conflict = [condition(&[], "Conflict", true, "PortConflict", "", None)];
        assert_eq!(said(&[], "Conflict", true, "PortConflict"), Some(Warning));
        assert_eq!(
            said(&conflict, "Conflict", false, "NoConflicts"),
            Some(Normal)
        );
    }

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
