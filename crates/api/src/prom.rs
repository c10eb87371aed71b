//! Prometheus text exposition (format 0.0.4), written by hand: work
//! counters are floats (hashes overflow a `u64` in hours at PH/s), and
//! everything is read from the engine's and the books' own atomics at
//! scrape time, so the share path records nothing extra.

use std::fmt::Write;

/// Builds one exposition.
#[derive(Default)]
pub struct Exposition {
    out: String,
    last: String,
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        if self.last != name {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
            self.last = name.to_string();
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = if v.is_nan() {
            writeln!(self.out, " NaN")
        } else if v.is_infinite() {
            writeln!(self.out, " {}", if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            writeln!(self.out, " {v}")
        };
    }

    /// A counter sample (`name` ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        debug_assert!(name.ends_with("_total"));
        self.header(name, "counter", help);
        self.sample(name, labels, v);
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        debug_assert!(!name.ends_with("_total"));
        self.header(name, "gauge", help);
        self.sample(name, labels, v);
    }

    /// A histogram from per-bucket (non-cumulative) counts; `counts` has
    /// one more entry than `bounds` (above the last bound).
    pub fn histogram(&mut self, name: &str, help: &str, bounds: &[f64], counts: &[u64], sum: f64) {
        self.header(name, "histogram", help);
        let mut cum = 0u64;
        let bucket = format!("{name}_bucket");
        for (b, c) in bounds.iter().zip(counts) {
            cum += c;
            let le = b.to_string();
            self.sample(&bucket, &[("le", &le)], cum as f64);
        }
        cum += counts.get(bounds.len()).copied().unwrap_or(0);
        self.sample(&bucket, &[("le", "+Inf")], cum as f64);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], cum as f64);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_types_once_labels_escaped_and_cumulative_buckets() {
        let mut e = Exposition::default();
        e.counter("x_total", "X.", &[("reason", "a\"b")], 1.0);
        e.counter("x_total", "X.", &[("reason", "c")], 2.5);
        e.gauge("g", "G.", &[], f64::NAN);
        e.histogram("h_seconds", "H.", &[0.1, 1.0], &[1, 2, 3], 4.5);
        let t = e.finish();
        assert_eq!(t.matches("# TYPE x_total counter").count(), 1);
        assert!(t.contains("x_total{reason=\"a\\\"b\"} 1\n"));
        assert!(t.contains("x_total{reason=\"c\"} 2.5\n"));
        assert!(t.contains("g NaN\n"));
        assert!(t.contains("h_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(t.contains("h_seconds_bucket{le=\"1\"} 3\n"));
        assert!(t.contains("h_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(t.contains("h_seconds_count 6\n"));
    }
}
