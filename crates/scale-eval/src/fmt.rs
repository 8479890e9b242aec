//! Number formatting and a minimal CSV reader/writer matching polars' `write_csv` output, so that
//! `real_de.csv` / `results.csv` / `agg_results.csv` read the same as cell-eval's files.

use std::io::Write;
use std::path::Path;

use crate::error::{EvalError, Result};

/// Shortest round-trip decimal digits and exponent of a finite non-zero value, as (digits, exp)
/// with value = 0.d1d2... * 10^(exp+1), i.e. `exp` is the scientific exponent.
fn sci_parts(s: &str) -> (String, i32) {
    // `s` is Rust's `{:e}` output: "-1.2345e-7" (shortest round-trip digits).
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp)
}

fn layout(neg: bool, digits: &str, exp: i32, sci: bool) -> String {
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if neg { "-" } else { "" };
    if sci {
        let (first, rest) = digits.split_at(1);
        let es = if exp < 0 {
            format!("-{}", -exp)
        } else {
            format!("+{exp}")
        };
        if rest.is_empty() {
            format!("{sign}{first}e{es}")
        } else {
            format!("{sign}{first}.{rest}e{es}")
        }
    } else if exp < 0 {
        format!("{sign}0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{}{}.0", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" }.into())
    } else if v == 0.0 {
        Some(if v.is_sign_negative() { "-0.0" } else { "0.0" }.into())
    } else {
        None
    }
}

/// A float64 the way polars writes it: shortest round-trip digits, scientific (`1e-6`, `1e+16`)
/// outside [1e-5, 1e16).
pub fn fmt_f64(v: f64) -> String {
    let mut s = String::new();
    push_f64(&mut s, v);
    s
}

/// [`fmt_f64`] appended to `out` (no allocation on the common path; used by the large DE CSVs).
pub fn push_f64(out: &mut String, v: f64) {
    if let Some(s) = special(v) {
        out.push_str(&s);
        return;
    }
    let a = v.abs();
    // whole and half values (Mann-Whitney U, p = 1): integer digits, then ".0" or ".5", which is what
    // ryu writes for them below 2^53, without its digit search
    let twice = a * 2.0;
    if twice < 9.0e15 && twice == twice.trunc() {
        if v < 0.0 {
            out.push('-');
        }
        let whole = a.trunc();
        out.push_str(itoa::Buffer::new().format(whole as u64));
        out.push_str(if a == whole { ".0" } else { ".5" });
        return;
    }
    if (1e-5..1e16).contains(&a) {
        // fast path: ryu's shortest round-trip digits in plain notation, which over exactly this range
        // is what polars writes (integers get ".0"); about twice as fast as `Display` (Grisu)
        out.push_str(ryu::Buffer::new().format_finite(v));
        return;
    }
    let (digits, exp) = sci_parts(&format!("{:e}", v.abs()));
    out.push_str(&layout(v < 0.0, &digits, exp, !(-5..16).contains(&exp)));
}

/// A float32 the way polars writes it (shortest f32 digits; scientific outside [1e-6, 1e13)).
pub fn fmt_f32(v: f32) -> String {
    let mut s = String::new();
    push_f32(&mut s, v);
    s
}

/// [`fmt_f32`] appended to `out`.
pub fn push_f32(out: &mut String, v: f32) {
    if let Some(s) = special(v as f64) {
        out.push_str(&s);
        return;
    }
    let a = v.abs();
    if (1e-6..1e13).contains(&a) {
        out.push_str(ryu::Buffer::new().format_finite(v));
        return;
    }
    let (digits, exp) = sci_parts(&format!("{:e}", v.abs()));
    out.push_str(&layout(v < 0.0, &digits, exp, !(-6..13).contains(&exp)));
}

/// Optional float64: polars writes null as the empty field.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map(fmt_f64).unwrap_or_default()
}

/// Quotes a CSV field when polars would (comma, quote, newline).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits CSV text into records of fields (RFC 4180 quoting).
/// Reads and parses a CSV file; I/O errors name the file.
pub fn read_csv_rows(path: &std::path::Path) -> crate::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|source| crate::EvalError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    Ok(parse_csv(&text))
}

pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Parses a float field as polars reads it (`NaN`, `inf`, `-inf`, empty = null → None).
pub fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    match t {
        "NaN" | "nan" => Some(f64::NAN),
        "inf" | "Inf" => Some(f64::INFINITY),
        "-inf" | "-Inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

/// Writes `text` to `path` atomically (`<path>.tmp` in the same directory, then rename).
pub fn write_atomic(path: &Path, text: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(text))
}

/// Writes `path` atomically from a streaming producer: into `path.tmp`, renamed when complete; on
/// error the temp file is removed and nothing appears at `path`.
pub fn write_atomic_with(path: &Path, produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let io = |source| EvalError::Io {
        file: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| {
        // the DE tables run to hundreds of MB: past the page cache (see `direct`)
        let mut f = crate::direct::DirectWriter::create(&tmp)?;
        produce(&mut f)?;
        f.finish().map(drop)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values written by polars itself (`/tmp/celleval/bin/python -c "import polars as pl, io; ...
    /// pl.DataFrame({'a': VALUES}).write_csv(buf)"`, polars from cell-eval 0.8.2's venv). The first
    /// is an exact decimal tie (…727.25): polars (ryu) rounds it to even, Rust's `Display` did not.
    #[test]
    fn float_layout_matches_polars_output() {
        let f64_cases = [
            (-1.5359316115537273e15, "-1535931611553727.2"),
            (1e-5, "0.00001"),
            (9.99e-6, "9.99e-6"),
            (1e16, "1e+16"),
            (123.0, "123.0"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-7"),
            (9.999999999999998e15, "9999999999999998.0"),
            (1e15, "1000000000000000.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (v, s) in f64_cases {
            assert_eq!(fmt_f64(v), s, "{v:e}");
        }
        let f32_cases = [
            (9.99e12f32, "9990000000000.0"),
            (1e13, "1e+13"),
            (1.5e-6, "0.0000015"),
            (9.9e-7, "9.9e-7"),
            (16777216.0, "16777216.0"),
            (0.30000001, "0.3"),
            (3.4028235e38, "3.4028235e+38"),
        ];
        for (v, s) in f32_cases {
            assert_eq!(fmt_f32(v), s, "{v:e}");
        }
    }

    #[test]
    fn polars_float64_layout() {
        // Expected strings taken from polars 2.1 `write_csv`.
        let cases = [
            (1e-10, "1e-10"),
            (0.1, "0.1"),
            (12.0, "12.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e20, "1e+20"),
            (123456789.0, "123456789.0"),
            (1e-5, "0.00001"),
            (1.234e-6, "1.234e-6"),
            (1e15, "1000000000000000.0"),
            (1.5e16, "1.5e+16"),
            (-3.25e-7, "-3.25e-7"),
        ];
        for (v, s) in cases {
            assert_eq!(fmt_f64(v), s);
        }
        assert_eq!(fmt_f64(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn whole_and_half_values_match_ryu() {
        // the integer fast path must write what the ryu path writes
        let mut vals = vec![
            0.5,
            1.0,
            2.5,
            39258.0,
            39258.5,
            1e15,
            4.4e15,
            123456789012.5,
            9.0e14 + 0.5,
        ];
        vals.extend((0..2000).map(|i| i as f64 * 0.5 + 1.0));
        for v in vals {
            for x in [v, -v] {
                let mut got = String::new();
                push_f64(&mut got, x);
                assert_eq!(got, ryu::Buffer::new().format_finite(x), "{x}");
            }
        }
    }

    #[test]
    fn polars_float32_layout() {
        let cases = [
            (1.0f32 / 3.0, "0.33333334"),
            (123456789.0, "123456790.0"),
            (1.234e-6, "0.000001234"),
            (1e-7, "1e-7"),
            (1e14, "1e+14"),
        ];
        for (v, s) in cases {
            assert_eq!(fmt_f32(v), s);
        }
    }

    #[test]
    fn csv_round_trip_with_quotes() {
        let rows = parse_csv("a,b\n\"x,y\",\"q\"\"r\"\n");
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x,y", "q\"r"]]);
        assert_eq!(csv_field("x,y"), "\"x,y\"");
    }
}
