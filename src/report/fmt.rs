//! How the report writes things, in one place: sizes (IEC units, as GitHub
//! counts its cache limit), durations, terminal and Markdown tables,
//! clipping, and the escaping of Markdown, mermaid labels and GitHub
//! workflow commands.

// ------------------------------------------------------------ figures

/// `5.8s`, `1m05.0s`, `1h02m03s`; `-` for what is not a duration.
pub fn secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s >= 3600.0 {
        let t = s.round() as u64;
        format!("{}h{:02}m{:02}s", t / 3600, t % 3600 / 60, t % 60)
    } else if s >= 60.0 {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// `512 B`, `1.5 MiB`, `10.0 GiB`: powers of 1024, named as such.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

// ------------------------------------------------------------ text

/// At most `max` bytes of `s`, cut on a char boundary and marked with `…`.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub(1);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// Line breaks as spaces: for a text that must stay on its line.
pub fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

// ------------------------------------------------------------ terminal tables

/// Aligned columns, two spaces apart, a header line first; no trailing
/// blanks. Every row has as many cells as `headers`.
pub fn table<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.as_ref().chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            s.push_str(c);
            let pad = w[i].saturating_sub(c.chars().count()) + 2;
            s.extend(std::iter::repeat_n(' ', pad));
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(&mut headers.iter().copied());
    for r in rows {
        out.push_str(&line(&mut r.iter().map(AsRef::as_ref)));
    }
    out
}

// ------------------------------------------------------------ Markdown

/// Column alignment in a Markdown table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The header and delimiter lines of a Markdown table.
pub fn md_header(columns: &[(&str, Align)]) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let mut s = md_row(&names);
    s.push('|');
    for c in columns {
        s.push_str(match c.1 {
            Align::Left => "---|",
            Align::Right => "--:|",
        });
    }
    s.push('\n');
    s
}

/// One Markdown table row from cells already escaped (see [`md_cell`]);
/// an empty cell is one blank.
pub fn md_row<S: AsRef<str>>(cells: &[S]) -> String {
    let mut s = String::from("|");
    for c in cells.iter().map(AsRef::as_ref) {
        s.push(' ');
        if !c.is_empty() {
            s.push_str(c);
            s.push(' ');
        }
        s.push('|');
    }
    s.push('\n');
    s
}

/// `<`, `>` and `&` as HTML entities.
pub fn md_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text for a table cell: one line, no `|`, HTML escaped.
pub fn md_cell(s: &str) -> String {
    md_html(&one_line(s)).replace('|', "&#124;")
}

/// Code in a table cell, at most `max` bytes of it (`<code>` rather than
/// backticks, so that a backtick or `|` inside cannot break the cell).
pub fn md_code(s: &str, max: usize) -> String {
    format!("<code>{}</code>", md_cell(&clip(s, max)))
}

/// Text for a fenced block: a run of three backticks cannot close the fence.
pub fn md_fenced(s: &str) -> String {
    s.replace("```", "ˋˋˋ")
}

/// A mermaid gantt task name of at most `max` bytes: mermaid reads `:` `;`
/// `#` (and quotes, brackets, …) as syntax, so keep plain words.
pub fn mermaid_label(s: &str, max: usize) -> String {
    let plain: String = clip(s, max)
        .chars()
        .map(|c| match c {
            ':' | ';' | '#' | '`' | '"' | '\'' | '<' | '>' | '&' | '%' | '{' | '}' | '[' | ']' => {
                ' '
            }
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ------------------------------------------------------------ workflow commands

/// The message of a workflow command (`::warning …::MESSAGE`), as the runner
/// reads it (actions/toolkit `command.ts` `escapeData`): `%` `\r` `\n`
/// become `%25` `%0D` `%0A`.
pub fn escape_data(s: &str) -> String {
    escape(s, false)
}

/// A property of a workflow command (`title=VALUE`; toolkit's
/// `escapeProperty`): as [`escape_data`], and `:` `,` become `%3A` `%2C`.
pub fn escape_property(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, property: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(secs(5.84), "5.8s");
        assert_eq!(secs(65.0), "1m05.0s");
        assert_eq!(secs(3723.0), "1h02m03s");
        assert_eq!(secs(f64::NAN), "-");
        assert_eq!(secs(-1.0), "-");
    }

    #[test]
    fn sizes_in_iec_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(5000), "4.9 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(bytes(1_064_391), "1.0 MiB");
        assert_eq!(bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
        assert_eq!(bytes(3 << 40), "3.0 TiB");
        assert_eq!(bytes(5000 << 40), "5000.0 TiB");
    }

    #[test]
    fn clip_cuts_on_a_char_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 4), "abc…");
        // `é` is two bytes: the cut backs off to the boundary before it.
        assert_eq!(clip("aéb", 3), "a…");
        assert_eq!(one_line("a\r\nb\nc"), "a  b c");
    }

    #[test]
    fn table_aligns_by_chars_and_trims() {
        let t = table(
            &["NAME", "X", "LAST"],
            &[vec!["ünïcode", "1", ""], vec!["a", "22", "z"]],
        );
        assert_eq!(t, "NAME     X   LAST\nünïcode  1\na        22  z\n");
    }

    #[test]
    fn markdown_tables_and_cells() {
        assert_eq!(
            md_header(&[("Step", Align::Left), ("Time", Align::Right)]),
            "| Step | Time |\n|---|--:|\n"
        );
        assert_eq!(md_row(&["a", "b"]), "| a | b |\n");
        assert_eq!(
            md_header(&[("", Align::Left), ("", Align::Left)]),
            "| | |\n|---|---|\n"
        );
        assert_eq!(
            md_cell("a | b\nc <x> & y"),
            "a &#124; b c &lt;x&gt; &amp; y"
        );
        assert_eq!(md_code("RUN a|b", 100), "<code>RUN a&#124;b</code>");
        assert_eq!(md_fenced("x ``` y"), "x ˋˋˋ y");
        assert_eq!(mermaid_label("RUN a: b; c # d", 60), "RUN a b c d");
    }

    #[test]
    fn workflow_command_escaping_follows_the_toolkit() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_data("a:b,c"), "a:b,c", "data keeps : and ,");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // `%` first: an escape sequence in the input is not taken as one.
        assert_eq!(escape_data("%0A"), "%250A");
    }
}
