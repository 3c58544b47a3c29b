//! What commands print: a plain table for people, JSON for scripts.

use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use userstate::{Event, FeedEvent, Timestamp, User};

use crate::Failure;

/// A table with these column names, printed when dropped into [`print_table`].
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    table
}

/// Prints `table` unless it has no rows.
pub fn print_table(table: &Table) -> Result<(), Failure> {
    if table.row_count() > 0 {
        // The preset pads every cell by one space on each side.
        for row in table.lines() {
            let row = row.strip_prefix(' ').unwrap_or(&row);
            line(row.trim_end())?;
        }
    }
    Ok(())
}

/// Prints one line; a closed stdout (`| head`) ends the command quietly.
pub fn line(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::Refused(String::new()),
        _ => Failure::Refused(format!("cannot write the output: {e}")),
    })
}

/// Prints `value` as one line of JSON.
pub fn json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::Refused(format!("cannot encode the output: {e}")))?;
    line(&text)
}

/// A time as people read it (RFC 3339, UTC).
pub fn time(at: Timestamp) -> String {
    at.to_string()
}

/// The row of a user in a listing.
pub fn user_row(user: &User) -> Vec<String> {
    let lock = user.lock.as_ref().map_or_else(String::new, |lock| {
        let until = lock
            .expires_at
            .map_or_else(String::new, |at| format!(" until {}", time(at)));
        let reason = lock
            .reason
            .as_ref()
            .map_or_else(String::new, |r| format!(": {}", r.as_str()));
        let cause = match lock.cause {
            userstate::LockCause::Command => "by command",
            userstate::LockCause::Lockout => "by lockout",
        };
        format!("{cause}{until}{reason}")
    });
    vec![
        user.id.as_str().to_owned(),
        user.org_id.as_str().to_owned(),
        user.state.as_str().to_owned(),
        user.sequence.to_string(),
        time(user.changed_at),
        lock,
    ]
}

/// The columns of [`user_row`].
pub const USER_COLUMNS: [&str; 6] = ["id", "org", "state", "sequence", "changed", "lock"];

/// The row of an event in a history.
pub fn event_row(event: &Event) -> Vec<String> {
    vec![
        event.sequence.to_string(),
        time(event.created_at),
        event.event_type().to_owned(),
        event.creator.as_str().to_owned(),
        payload_summary(event),
    ]
}

/// The columns of [`event_row`].
pub const EVENT_COLUMNS: [&str; 5] = ["sequence", "at", "type", "actor", "details"];

/// One line of the feed.
pub fn feed_line(fed: &FeedEvent) -> String {
    let e = &fed.event;
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        fed.position,
        time(e.created_at),
        e.org_id,
        e.user_id,
        e.event_type(),
        e.creator,
        payload_summary(e)
    )
}

/// What an event says beyond its type, in one short text.
fn payload_summary(event: &Event) -> String {
    match userstate::storage::json::encode_payload(&event.payload) {
        Ok((_, payload)) if payload != "{}" => payload,
        _ => String::new(),
    }
}

/// A progress bar on standard error for `length` items (0: unknown),
/// drawn only on a terminal and never with `--json`.
pub fn progress(length: u64, what: &str, quiet: bool) -> ProgressBar {
    let bar = if length == 0 {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(length)
    };
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = if length == 0 {
        format!("{{spinner}} {{human_pos}} {what} ({{per_sec}}, {{elapsed}})")
    } else {
        format!("{{bar:40}} {{human_pos}}/{{human_len}} {what} ({{per_sec}}, eta {{eta}})")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
