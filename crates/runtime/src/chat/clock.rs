//! The clock behind the `strftime_now(format)` template global (Llama 3.x and others
//! print today's date into the system prompt).
//!
//! Rendering must be reproducible in tests and must not panic in the browser (where
//! `std::time::SystemTime::now()` panics on wasm32-unknown-unknown), so the caller can
//! fix the instant; `strftime` is a small C-locale implementation of the directives
//! Python's `datetime.strftime` passes to glibc.

/// A civil date and time (no time zone: Python's `datetime.now()` is naive local time;
/// Wisp uses UTC unless the caller passes its local time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl DateTime {
    /// The UTC date and time `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The current UTC time. On wasm32-unknown-unknown there is no system clock in
    /// `std` (it panics), so this returns the Unix epoch: pass
    /// [`RenderOptions::now`](super::RenderOptions::now) from JavaScript's `Date`.
    pub fn now_utc() -> DateTime {
        #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
        {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            DateTime::from_unix(secs)
        }
        #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
        {
            DateTime::from_unix(0)
        }
    }

    fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// 0 = Monday.
    fn weekday(&self) -> usize {
        // 1970-01-01 was a Thursday (3).
        (self.days() + 3).rem_euclid(7) as usize
    }

    fn day_of_year(&self) -> i64 {
        self.days() - days_from_civil(self.year, 1, 1) + 1
    }

    /// C-locale `strftime`. Supports glibc's `-` flag (`%-d`: no padding), which
    /// Python on Linux passes through. Unknown directives are kept verbatim.
    pub fn strftime(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let no_pad = chars.peek() == Some(&'-');
            if no_pad {
                chars.next();
            }
            let Some(d) = chars.next() else {
                out.push('%');
                break;
            };
            let num = |v: i64, width: usize| {
                if no_pad {
                    v.to_string()
                } else {
                    format!("{v:0width$}")
                }
            };
            let month = MONTHS[(self.month.clamp(1, 12) - 1) as usize];
            let weekday = WEEKDAYS[self.weekday()];
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            } as i64;
            let s = match d {
                'Y' => self.year.to_string(),
                'y' => num((self.year as i64).rem_euclid(100), 2),
                'm' => num(self.month as i64, 2),
                'd' => num(self.day as i64, 2),
                'e' => format!("{:>2}", self.day),
                'H' => num(self.hour as i64, 2),
                'I' => num(hour12, 2),
                'M' => num(self.minute as i64, 2),
                'S' => num(self.second as i64, 2),
                'p' => (if self.hour < 12 { "AM" } else { "PM" }).to_string(),
                'B' => month.to_string(),
                'b' | 'h' => month[..3].to_string(),
                'A' => weekday.to_string(),
                'a' => weekday[..3].to_string(),
                'j' => num(self.day_of_year(), 3),
                'u' => (self.weekday() + 1).to_string(),
                'w' => ((self.weekday() + 1) % 7).to_string(),
                'F' => self.strftime("%Y-%m-%d"),
                'T' | 'X' => self.strftime("%H:%M:%S"),
                'D' | 'x' => self.strftime("%m/%d/%y"),
                'R' => self.strftime("%H:%M"),
                'c' => self.strftime("%a %b %e %H:%M:%S %Y"),
                // Naive datetimes have no zone: Python prints nothing.
                'Z' | 'z' => String::new(),
                '%' => "%".to_string(),
                other => {
                    let mut s = String::from('%');
                    if no_pad {
                        s.push('-');
                    }
                    s.push(other);
                    s
                }
            };
            out.push_str(&s);
        }
        out
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = y as i64 - if m <= 2 { 1 } else { 0 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_c_locale() {
        // 2025-03-14 09:26:53 UTC, a Friday.
        let t = DateTime::from_unix(1_741_944_413);
        assert_eq!(
            t,
            DateTime {
                year: 2025,
                month: 3,
                day: 14,
                hour: 9,
                minute: 26,
                second: 53
            }
        );
        assert_eq!(t.strftime("%Y-%m-%d"), "2025-03-14");
        assert_eq!(t.strftime("%d %b %Y"), "14 Mar 2025");
        assert_eq!(t.strftime("%B %d, %Y"), "March 14, 2025");
        assert_eq!(t.strftime("%A %-d %j %I%p %%"), "Friday 14 073 09AM %");
        assert_eq!(t.strftime("%c"), "Fri Mar 14 09:26:53 2025");
        assert_eq!(
            DateTime::from_unix(0).strftime("%F %T %a"),
            "1970-01-01 00:00:00 Thu"
        );
    }
}
