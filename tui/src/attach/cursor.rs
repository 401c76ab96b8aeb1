//! Moving through a list or a scrolled text: the list cursor, which keeps
//! the selection visible without the list jumping, and the scroll position of
//! the detail and help texts. Both take the same movement actions.

use std::cell::Cell;

use super::keys::Action;

/// A cursor into a list: the selected row and the first row shown.
#[derive(Debug, Default)]
pub struct Cursor {
    pub selected: usize,
    /// Set by rendering (which knows the height), kept across frames so the
    /// list does not jump.
    pub offset: Cell<usize>,
}

impl Cursor {
    /// Moves the selection by `action` in a list of `len` rows, `page` rows
    /// to a page.
    pub(super) fn step(&mut self, action: Action, len: usize, page: usize) {
        let last = len.saturating_sub(1);
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            Action::PageDown => (self.selected + page).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => self.selected,
        };
    }

    /// The first row to show so that the selection is visible in `height` rows.
    pub fn visible_offset(&self, len: usize, height: usize) -> usize {
        let selected = self.selected.min(len.saturating_sub(1));
        let mut offset = self.offset.get().min(len.saturating_sub(height));
        if selected < offset {
            offset = selected;
        } else if height > 0 && selected >= offset + height {
            offset = selected + 1 - height;
        }
        self.offset.set(offset);
        offset
    }
}

/// The scroll position `pos` after `action`, at most `max`.
pub(super) fn scroll(pos: u16, action: Action, page: usize, max: u16) -> u16 {
    let page = page.min(u16::MAX as usize) as u16;
    let pos = match action {
        Action::Up => pos.saturating_sub(1),
        Action::Down => pos.saturating_add(1),
        Action::PageUp => pos.saturating_sub(page),
        Action::PageDown => pos.saturating_add(page),
        Action::Top => 0,
        Action::Bottom => max,
        _ => pos,
    };
    pos.min(max)
}
