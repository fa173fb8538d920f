//! The `RESULT` line in which the client process reports to the bench
//! process: written by one, parsed by the other.

use std::fmt::Write as _;

use crate::Res;

/// What the client process reports, parsed from its `RESULT` line.
#[derive(Default)]
pub struct ClientReport {
    pub delivered: u64,
    pub expected: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub per_client_min: u64,
    pub per_client_max: u64,
    pub complete: u64,
    pub seconds: f64,
    pub stop: String,
    pub gaps: u64,
    pub missed: u64,
    pub out_of_order: u64,
    pub bad_data: u64,
    pub eof: u64,
    pub read_errors: u64,
    pub connect_s: f64,
    pub client_cpu_ms: u64,
    pub first_error: Option<String>,
}

impl ClientReport {
    pub fn to_line(&self) -> String {
        let mut line = String::from("RESULT");
        let _ = write!(
            line,
            " delivered={} expected={} p50_us={} p99_us={} max_us={} per_client_min={} \
             per_client_max={} complete={} seconds={:.6} stop={} gaps={} missed={} \
             out_of_order={} bad_data={} eof={} read_errors={} connect_s={:.3} client_cpu_ms={}",
            self.delivered,
            self.expected,
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.per_client_min,
            self.per_client_max,
            self.complete,
            self.seconds,
            self.stop,
            self.gaps,
            self.missed,
            self.out_of_order,
            self.bad_data,
            self.eof,
            self.read_errors,
            self.connect_s,
            self.client_cpu_ms,
        );
        if let Some(e) = &self.first_error {
            // Last, and to the end of the line: it may hold spaces.
            let _ = write!(line, " first_error={}", e.replace('\n', " "));
        }
        line
    }

    pub fn parse(line: &str) -> Res<ClientReport> {
        let mut report = ClientReport::default();
        let body = line.strip_prefix("RESULT").unwrap_or(line);
        let (body, first_error) = match body.split_once(" first_error=") {
            Some((body, e)) => (body, Some(e.to_string())),
            None => (body, None),
        };
        report.first_error = first_error;
        let bad = |key: &str| format!("bad {key} in the client's result line {line:?}");
        for pair in body.split_whitespace() {
            let (key, value) = pair.split_once('=').ok_or_else(|| bad(pair))?;
            let int = || value.parse::<u64>().map_err(|_| bad(key));
            let float = || value.parse::<f64>().map_err(|_| bad(key));
            match key {
                "delivered" => report.delivered = int()?,
                "expected" => report.expected = int()?,
                "p50_us" => report.p50_us = int()?,
                "p99_us" => report.p99_us = int()?,
                "max_us" => report.max_us = int()?,
                "per_client_min" => report.per_client_min = int()?,
                "per_client_max" => report.per_client_max = int()?,
                "complete" => report.complete = int()?,
                "seconds" => report.seconds = float()?,
                "stop" => report.stop = value.to_string(),
                "gaps" => report.gaps = int()?,
                "missed" => report.missed = int()?,
                "out_of_order" => report.out_of_order = int()?,
                "bad_data" => report.bad_data = int()?,
                "eof" => report.eof = int()?,
                "read_errors" => report.read_errors = int()?,
                "connect_s" => report.connect_s = float()?,
                "client_cpu_ms" => report.client_cpu_ms = int()?,
                _ => {}
            }
        }
        Ok(report)
    }
}
