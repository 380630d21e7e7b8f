//! Padding the cells of text tables, whatever their width.
//!
//! `format!("{cell:<w$}")` panics when `w` is over 65,535, and a cell that
//! long (a reason quoting a peer's answer, a node name from a manifest) is
//! outside data. Cells are padded here instead, and a column is aligned only
//! up to `MAX_ALIGNED` characters: a longer cell is printed whole and pushes
//! the rest of its own line right, instead of every row of the table.

/// The widest a column is padded to.
pub const MAX_ALIGNED: usize = 100;

/// The width to align a column to: its widest cell (in characters), at
/// least `at_least`, at most `MAX_ALIGNED`.
pub fn width<'a>(cells: impl IntoIterator<Item = &'a str>, at_least: usize) -> usize {
    cells.into_iter().map(|c| c.chars().count()).fold(at_least, usize::max).min(MAX_ALIGNED.max(at_least))
}

/// `cell` followed by spaces up to `width` characters (none when it is as
/// wide or wider).
pub fn pad(cell: &str, width: usize) -> String {
    let missing = width.saturating_sub(cell.chars().count());
    let mut out = String::with_capacity(cell.len() + missing);
    out.push_str(cell);
    out.extend(std::iter::repeat_n(' ', missing));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_padded_by_characters_and_never_cut() {
        assert_eq!(pad("gpu", 5), "gpu  ");
        assert_eq!(pad("Grâce", 6), "Grâce ");
        assert_eq!(pad("toolong", 3), "toolong");
        let huge = "x".repeat(70_000);
        assert_eq!(pad(&huge, 70_001).len(), 70_001, "no formatter limit");
        assert_eq!(width(["ab", "abcd"], 3), 4);
        assert_eq!(width([huge.as_str()], 4), MAX_ALIGNED, "a huge cell does not widen the column");
    }
}
