//! The application: the model plus what the user is looking at, the key
//! handling, and the loop that ties input, data and redraws together.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind};
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::cursor::scroll;
pub use super::cursor::Cursor;
use super::event::{Command, DataEvent, LinkEvent};
use super::keys::{self, Action, Context};
use super::state::{Capture, Connection, State, TaskState};
use super::surveying::Schedule;

/// How often the screen is redrawn without input (countdowns, the clock).
pub const TICK: Duration = Duration::from_millis(250);

/// At most this many tasks are asked for when capturing a group's stacks.
pub const GROUP_DUMP_MAX: usize = 10_000;

/// The two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Tasks,
    Groups,
}

/// What the detail screen is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Task(u64),
    Group(u32),
}

/// The detail screen: a task or group and its captured stack.
#[derive(Debug)]
pub struct Detail {
    pub target: Target,
    /// Number of the dump request whose answer goes here.
    pub seq: u64,
    pub capture: Capture,
    /// First line shown of the scrolled body.
    pub scroll: u16,
    /// Show runtime-internal frames too.
    pub full_frames: bool,
}

/// The whole application state.
#[derive(Debug)]
pub struct App {
    pub state: State,
    pub view: View,
    pub tasks: Cursor,
    /// The task the selection follows as the list re-sorts, once the user
    /// has moved to it; `None`: the selection stays at its position (the top,
    /// at first, where the worst task is).
    pub selected_task_id: Option<u64>,
    pub groups: Cursor,
    /// The group the selection follows, as for tasks.
    pub selected_group_id: Option<u32>,
    pub detail: Option<Detail>,
    pub help: bool,
    pub help_scroll: u16,
    /// The filter prompt's text while typing it.
    pub filter_input: Option<String>,
    /// Local time, for countdowns; set by each tick so rendering is pure.
    pub now: Instant,
    /// Rows the list showed in the last frame (page size).
    pub page: Cell<usize>,
    /// Largest useful scroll of the detail or help text in the last frame.
    pub scroll_max: Cell<u16>,
    pub quit: bool,
    /// When to survey every task's await point.
    pub surveys: Schedule,
    next_seq: u64,
    outbox: Vec<Command>,
}

impl App {
    pub fn new(state: State, now: Instant) -> Self {
        Self {
            state,
            view: View::Tasks,
            tasks: Cursor::default(),
            selected_task_id: None,
            selected_group_id: None,
            groups: Cursor::default(),
            detail: None,
            help: false,
            help_scroll: 0,
            filter_input: None,
            now,
            page: Cell::new(20),
            scroll_max: Cell::new(0),
            quit: false,
            surveys: Schedule::new(super::surveying::SURVEY_EVERY),
            next_seq: 1,
            outbox: Vec::new(),
        }
    }

    /// Where keys are read right now.
    pub fn context(&self) -> Context {
        if self.filter_input.is_some() {
            Context::FilterInput
        } else if self.help {
            Context::Help
        } else if self.detail.is_some() {
            Context::Detail
        } else {
            match self.view {
                View::Tasks => Context::Tasks,
                View::Groups => Context::Groups,
            }
        }
    }

    /// Requests for the connection task produced since the last call.
    /// Asks for a survey of every task when one is due (see
    /// [`super::surveying`]).
    pub fn survey_if_due(&mut self) {
        if self.surveys.due(self.now, self.state.connection.is_live()) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.surveys.asked(seq, self.now);
            self.outbox.push(Command::Dump { seq, task_ids: Vec::new() });
        }
    }

    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.outbox)
    }

    /// Handles one key press; returns the action it triggered.
    pub fn handle_key(&mut self, ev: KeyEvent) -> Option<Action> {
        let binding = keys::lookup(self.context(), &ev)?;
        self.perform(binding.action, &ev);
        Some(binding.action)
    }

    fn perform(&mut self, action: Action, ev: &KeyEvent) {
        let page = self.page.get().max(1);
        match action {
            Action::Quit => self.quit = true,
            Action::Help => {
                self.help = !self.help;
                self.help_scroll = 0;
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top | Action::Bottom => {
                self.move_cursor(action, page)
            }
            Action::NextView | Action::PrevView => {
                self.view = match self.view {
                    View::Tasks => View::Groups,
                    View::Groups => View::Tasks,
                }
            }
            Action::Open => self.open(),
            Action::Back => {
                if self.help {
                    self.help = false;
                } else {
                    self.detail = None;
                }
            }
            Action::Filter => self.filter_input = Some(self.state.filter().text.clone()),
            Action::ClearFilter => {
                if !self.state.filter().text.is_empty() {
                    self.set_filter("");
                }
            }
            Action::SortNext => {
                self.state.set_sort_column(self.state.sort_column().next());
                self.follow_selection();
            }
            Action::Reverse => {
                self.state.reverse_order();
                self.follow_selection();
            }
            Action::ToggleState => {
                if let KeyCode::Char(c @ '1'..='4') = ev.code {
                    self.state.toggle_state(TaskState::ALL[c as usize - '1' as usize]);
                    self.follow_selection();
                }
            }
            Action::KeepDone => self.state.toggle_keep_done(),
            Action::FullFrames => {
                if let Some(d) = &mut self.detail {
                    d.full_frames = !d.full_frames;
                }
            }
            Action::Recapture => {
                if let Some(target) = self.detail.as_ref().map(|d| d.target) {
                    self.capture(target);
                }
            }
            Action::FilterAccept => self.filter_input = None,
            Action::FilterCancel => {
                self.filter_input = None;
                self.set_filter("");
            }
            Action::FilterBackspace => {
                if let Some(mut text) = self.filter_input.take() {
                    text.pop();
                    self.set_filter(&text);
                    self.filter_input = Some(text);
                }
            }
            Action::FilterInsert => {
                if let (Some(mut text), KeyCode::Char(c)) = (self.filter_input.take(), ev.code) {
                    text.push(c);
                    self.set_filter(&text);
                    self.filter_input = Some(text);
                }
            }
        }
    }

    fn set_filter(&mut self, text: &str) {
        self.state.set_filter_text(text);
        self.follow_selection();
    }

    fn move_cursor(&mut self, action: Action, page: usize) {
        let max = self.scroll_max.get();
        if self.help {
            self.help_scroll = scroll(self.help_scroll, action, page, max);
        } else if let Some(d) = &mut self.detail {
            d.scroll = scroll(d.scroll, action, page, max);
        } else {
            // Back at the top, the selection stays there; anywhere else it
            // follows the row it is on.
            let pin = action != Action::Top;
            match self.view {
                View::Tasks => {
                    self.tasks.step(action, self.state.shown_count(), page);
                    self.selected_task_id = self.state.shown_task(self.tasks.selected).map(|t| t.id).filter(|_| pin);
                }
                View::Groups => {
                    self.groups.step(action, self.state.groups().ordered().len(), page);
                    self.selected_group_id = self.selected_group().filter(|_| pin);
                }
            }
        }
    }

    /// Keeps the selection on the same task and group after the lists
    /// changed; when they are gone (or none was chosen), keeps the position.
    fn follow_selection(&mut self) {
        match self.selected_task_id.and_then(|id| self.state.position_of(id)) {
            Some(pos) => self.tasks.selected = pos,
            None => self.tasks.selected = self.tasks.selected.min(self.state.shown_count().saturating_sub(1)),
        }
        let ordered = self.state.groups().ordered();
        match self.selected_group_id.and_then(|id| ordered.iter().position(|g| *g == id)) {
            Some(pos) => self.groups.selected = pos,
            None => self.groups.selected = self.groups.selected.min(ordered.len().saturating_sub(1)),
        }
    }

    /// The group under the cursor.
    pub fn selected_group(&self) -> Option<u32> {
        self.state.groups().ordered().get(self.groups.selected).copied()
    }

    fn open(&mut self) {
        let target = match self.view {
            View::Tasks => self.state.shown_task(self.tasks.selected).map(|t| Target::Task(t.id)),
            View::Groups => self.selected_group().map(Target::Group),
        };
        if let Some(target) = target {
            self.capture(target);
        }
    }

    /// Opens the detail of `target` and asks for its stacks.
    fn capture(&mut self, target: Target) {
        let task_ids = match target {
            Target::Task(id) => vec![id],
            Target::Group(g) => self.state.group_task_ids(g, GROUP_DUMP_MAX),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let (full_frames, scroll) =
            self.detail.as_ref().filter(|d| d.target == target).map_or((false, 0), |d| (d.full_frames, d.scroll));
        let capture = if self.state.connection.is_live() {
            self.outbox.push(Command::Dump { seq, task_ids });
            Capture::Capturing
        } else {
            Capture::Failed("not connected to the agent".to_string())
        };
        self.detail = Some(Detail { target, seq, capture, scroll, full_frames });
    }

    /// Applies data from the connection task.
    pub fn handle_data(&mut self, ev: DataEvent) {
        match ev {
            DataEvent::Link(link) => {
                let connection = match link {
                    LinkEvent::Connecting { attempt } => Connection::Connecting { attempt },
                    LinkEvent::Live => Connection::Live,
                    LinkEvent::Lost { reason, retry_in } => Connection::Lost { reason, retry_at: self.now + retry_in },
                    // No countdown: a new process is looked for all along.
                    LinkEvent::Exited { pid, retry_in: _ } => Connection::Exited { pid },
                    LinkEvent::Seeking { name } => Connection::Seeking { name },
                    LinkEvent::Followed { pid, previous } => {
                        // The new process's Info and Live follow.
                        self.state.set_followed(pid, previous);
                        return;
                    }
                };
                if !connection.is_live() {
                    self.surveys.reset();
                    if let Some(d) = &mut self.detail {
                        if matches!(d.capture, Capture::Capturing) {
                            d.capture = Capture::Failed("the connection dropped during the capture".to_string());
                        }
                    }
                }
                self.state.set_connection(connection);
            }
            DataEvent::Info(info) => self.state.set_info(*info),
            DataEvent::Update(update) => {
                let complete = update.complete;
                self.state.apply(*update);
                if complete {
                    self.follow_selection();
                }
            }
            DataEvent::Dump { seq, result } => {
                if self.surveys.answered(seq, self.now) {
                    // A failed survey leaves the latest good one in place.
                    if let Ok(outcome) = result {
                        self.state.set_survey(outcome);
                    }
                    return;
                }
                if let Ok(outcome) = &result {
                    self.state.note_dump(outcome);
                }
                if let Some(d) = self.detail.as_mut().filter(|d| d.seq == seq) {
                    d.capture = match result {
                        Ok(outcome) => Capture::Ready(outcome),
                        Err(e) => Capture::Failed(e),
                    };
                }
            }
        }
    }

    /// Runs until the user quits: redraws on input, on data and on a tick,
    /// and forwards dump requests to the connection task.
    pub async fn run<B, I>(
        mut self,
        terminal: &mut Terminal<B>,
        mut input: I,
        mut data: mpsc::Receiver<DataEvent>,
        commands: mpsc::Sender<Command>,
    ) -> anyhow::Result<()>
    where
        B: Backend,
        B::Error: Send + Sync + 'static,
        I: Stream<Item = std::io::Result<Event>> + Unpin,
    {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut data_open = true;
        loop {
            self.now = Instant::now();
            self.survey_if_due();
            for cmd in self.take_commands() {
                let _ = commands.try_send(cmd);
            }
            terminal.draw(|frame| frame.render_widget(&self, frame.area()))?;
            tokio::select! {
                _ = tick.tick() => {}
                ev = input.next() => match ev {
                    Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                        self.handle_key(key);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading the terminal")),
                    None => return Ok(()),
                },
                ev = data.recv(), if data_open => match ev {
                    Some(ev) => {
                        self.handle_data(ev);
                        // Take whatever else is queued (a snapshot comes in
                        // many chunks) before drawing once.
                        while let Ok(ev) = data.try_recv() {
                            self.handle_data(ev);
                        }
                    }
                    None => data_open = false,
                },
            }
            for cmd in self.take_commands() {
                // The connection task is gone only when we are quitting.
                let _ = commands.try_send(cmd);
            }
            if self.quit {
                return Ok(());
            }
        }
    }
}
