//! The Worker's log: one JSON object per line, `{"persona_edge": kind, field: value,
//! …}`, written with `console.log` (`wrangler tail`, Workers Logs, Logpush). What a
//! line says comes from the core's [`Report`]; the one line of the Worker's own is
//! `dedup_error` (a Durable Object call that failed). Never an attribute value.

use persona_edge_core::{Field, Level, Report};
use serde_json::{Map, Value};

use crate::error::DedupError;

/// The member that names what a line is about.
const KIND: &str = "persona_edge";
/// The kind of the line for a Durable Object call that failed.
pub const DEDUP_ERROR: &str = "dedup_error";

/// The line of a report; `None` for a plain forward in enforce mode, which the Worker
/// does not log.
pub fn report_line(report: &Report<'_>) -> Option<String> {
    if report.level() == Level::Debug {
        return None;
    }
    let mut line = Map::new();
    line.insert(KIND.into(), report.kind().into());
    for (name, value) in report.fields() {
        let value = match value {
            Field::Text(text) => Value::from(text),
            Field::Number(n) => Value::from(n),
            Field::List(items) => Value::from(items),
        };
        line.insert(name.into(), value);
    }
    Some(Value::Object(line).to_string())
}

/// The line of a Durable Object call for `event_id` that failed.
pub fn dedup_error_line(error: &DedupError, event_id: &str) -> String {
    let mut line = Map::new();
    line.insert(KIND.into(), DEDUP_ERROR.into());
    line.insert("op".into(), error.op().into());
    line.insert("error".into(), error.to_string().into());
    line.insert("event_id".into(), event_id.into());
    Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Op;
    use persona_edge_core::{ErrorCode, Event, Mode, Rejection};
    use std::time::Duration;

    /// Every line docs/worker.md shows (its "What the Worker logs" block).
    fn documented_lines() -> Vec<String> {
        let doc = include_str!("../../docs/worker.md");
        let section = doc
            .split("## What the Worker logs")
            .nth(1)
            .and_then(|s| s.split("```json").nth(1))
            .and_then(|s| s.split("```").next())
            .unwrap_or_default();
        section
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(String::from)
            .collect()
    }

    #[test]
    fn lines_are_the_documented_ones() {
        let documented = documented_lines();
        assert!(documented.len() >= 8, "{documented:?}");
        let mismatch = Rejection::new(
            ErrorCode::SignatureMismatch,
            "no Persona-Signature group matches the body with a configured secret",
        );
        let line = report_line(&Report {
            mode: Some(Mode::Enforce),
            event: Event::Rejected {
                rejection: &mismatch,
                problems: &[],
            },
        });
        assert_eq!(line.as_ref(), documented.first());
        let line = report_line(&Report {
            mode: Some(Mode::Enforce),
            event: Event::OriginUnreachable {
                error: "Network connection lost.",
            },
        });
        assert!(documented.contains(&line.unwrap()));
        let timeout = DedupError::TimedOut {
            op: Op::Admit,
            after: Duration::from_secs(2),
        };
        assert_eq!(
            Some(&dedup_error_line(&timeout, "evt_…")),
            documented.last()
        );
    }

    #[test]
    fn a_plain_forward_is_not_logged() {
        let report = Report {
            mode: Some(Mode::Enforce),
            event: Event::Forwarded {
                metadata: None,
                stripped: 3,
            },
        };
        assert_eq!(report_line(&report), None);
        let shadow = Report {
            mode: Some(Mode::Shadow),
            event: Event::Shadowed {
                would: persona_edge_core::Verdict::Forward,
                metadata: None,
            },
        };
        assert_eq!(
            report_line(&shadow).as_deref(),
            Some(r#"{"decision":"forward","persona_edge":"shadow"}"#)
        );
    }
}
