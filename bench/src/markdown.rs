//! Tables written into a Markdown file between two markers, so that the
//! text around them is kept.

use std::path::Path;

use crate::Result;

/// Puts `tables` between `begin` and `end` in `path`, keeping the rest of
/// the file; a file without the markers gets them appended, and a missing
/// or empty file starts with `heading`.
pub fn write_between(
    path: &Path,
    begin: &str,
    end: &str,
    heading: &str,
    tables: &str,
) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error.into()),
    };
    std::fs::write(path, splice(&old, begin, end, heading, tables))?;
    Ok(())
}

/// `old` with the text between the markers replaced by `tables`.
fn splice(old: &str, begin: &str, end: &str, heading: &str, tables: &str) -> String {
    let block = format!("{begin}\n{tables}{end}\n");
    match (old.find(begin), old.find(end)) {
        (Some(at), Some(until)) if at < until => {
            let rest = old[until + end.len()..].trim_start_matches('\n');
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{block}{gap}{rest}", &old[..at])
        }
        _ if old.is_empty() => format!("{heading}{block}"),
        _ => format!("{}\n\n{block}", old.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "<!-- b -->";
    const E: &str = "<!-- e -->";

    #[test]
    fn only_the_text_between_the_markers_is_replaced() {
        let old = format!("# Title\n\n{B}\nold tables\n{E}\n\n## Analysis\n");
        let new = splice(&old, B, E, "", "new tables\n");
        assert_eq!(
            new,
            format!("# Title\n\n{B}\nnew tables\n{E}\n\n## Analysis\n")
        );
        assert_eq!(splice(&new, B, E, "", "new tables\n"), new);
    }

    #[test]
    fn files_without_markers_get_them_appended() {
        assert_eq!(
            splice("", B, E, "# Benchmarks\n\n", "t\n"),
            format!("# Benchmarks\n\n{B}\nt\n{E}\n")
        );
        assert_eq!(splice("", B, E, "", "t\n"), format!("{B}\nt\n{E}\n"));
        assert_eq!(
            splice("# Notes\n", B, E, "# Benchmarks\n\n", "t\n"),
            format!("# Notes\n\n{B}\nt\n{E}\n")
        );
    }
}
