//! What the benchmark smoke tests share: reading the Markdown tables.

/// The cell in the column headed `column` of the row whose first cells are
/// `first`, in the first Markdown table that has both.
pub fn cell_of(output: &str, first: &[&str], column: &str) -> Option<String> {
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim().trim_matches('|');
        line.split('|').map(|cell| cell.trim().to_owned()).collect()
    };
    let lines: Vec<&str> = output.lines().collect();
    lines
        .split(|line| !line.starts_with('|'))
        .filter_map(|table| {
            let (header, rows) = table.split_first()?;
            let index = cells(header).iter().position(|cell| cell == column)?;
            let row = rows
                .iter()
                .map(|row| cells(row))
                .find(|row| row.iter().zip(first).all(|(cell, want)| cell == want))?;
            row.get(index).cloned()
        })
        .next()
}
