//! The markdown tables printed at the end: one per scenario, one row per
//! target, each figure the median of its successful runs (each field its own
//! median), with its ratio to the first target's in parentheses.

use serde_json::Value;

use crate::run::Scenario;

/// Column heading and JSON field.
const COLUMNS: [(&str, &str); 10] = [
    ("delivered/s", "delivered_per_s"),
    ("loss %", "loss_pct"),
    ("p50 µs", "lat_p50_us"),
    ("p99 µs", "lat_p99_us"),
    ("max µs", "lat_max_us"),
    ("CPU ns/deliv", "server_cpu_ns_per_delivered"),
    ("RSS KiB/client", "rss_per_client_kib"),
    ("threads", "threads_connected"),
    ("connect s", "clients_connect_s"),
    ("loadgen busy %", "loadgen_busy_pct"),
];

/// The runs of one target on one scenario: JSON lines or failure reasons.
pub type Runs = Vec<Result<Value, String>>;

/// One scenario's table; `rows` are (target, runs), the first is the base.
pub fn table(scenario: &Scenario, repeat: usize, rows: &[(&str, &Runs)]) -> String {
    let mut out = format!(
        "### {} (N={}, M={}, B={}, I={} µs; median of {repeat})\n\n| target |",
        scenario.name, scenario.clients, scenario.events, scenario.size, scenario.interval_us
    );
    for (heading, _) in COLUMNS {
        out += &format!(" {heading} |");
    }
    out += " runs |\n|---|";
    out += &"---:|".repeat(COLUMNS.len() + 1);
    out += "\n";
    let medians: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|(_, runs)| {
            COLUMNS
                .iter()
                .map(|(_, field)| median(runs, field))
                .collect()
        })
        .collect();
    for (row, (name, runs)) in rows.iter().enumerate() {
        let ok = runs.iter().filter(|r| r.is_ok()).count();
        out += &format!("| {name} |");
        if ok == 0 {
            let reason = runs
                .iter()
                .find_map(|r| r.as_ref().err())
                .map_or("no runs", |e| e);
            out += &format!(" failed: {} |", reason.replace('|', "/"));
            out += &" |".repeat(COLUMNS.len() - 1);
        } else {
            for (col, value) in medians[row].iter().enumerate() {
                let base = medians[0][col];
                out += &format!(" {} |", cell(*value, base.filter(|_| row > 0)));
            }
        }
        out += &format!(" {ok}/{} |\n", runs.len());
    }
    out
}

/// The median of `field` over the successful runs that have it.
fn median(runs: &Runs, field: &str) -> Option<f64> {
    let mut values: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok()?.get(field)?.as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A value, and its ratio to `base` when there is one to take.
fn cell(value: Option<f64>, base: Option<f64>) -> String {
    let Some(v) = value else { return "–".into() };
    match base {
        Some(b) if b != 0.0 => format!("{} ({}×)", number(v), number(v / b)),
        _ => number(v),
    }
}

/// Whole numbers as they are, others to ~3 significant figures below 100;
/// from 100 up, rounded and grouped by thousands.
fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        return if v < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        };
    }
    if v.fract() == 0.0 {
        return format!("{v}");
    }
    let decimals = if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_medians() {
        assert_eq!(number(1234567.8), "1,234,568");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.01234), "0.012");
        let runs: Runs = vec![
            Ok(serde_json::json!({"x": 3.0})),
            Err("boom".into()),
            Ok(serde_json::json!({"x": 1})),
        ];
        assert_eq!(median(&runs, "x"), Some(2.0));
        assert_eq!(cell(Some(2.0), Some(4.0)), "2 (0.500×)");
        assert_eq!(cell(Some(1068.0), Some(1.0)), "1,068 (1,068×)");
    }
}
