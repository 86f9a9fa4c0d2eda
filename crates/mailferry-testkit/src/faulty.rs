//! A backend that fails on cue: [`Faults`] is a [`SourceHook`] and [`TargetHook`] that lets a
//! chosen call through a number of times, then fails it with an error of a chosen kind, for a
//! number of times — optionally *after* letting it reach the store (an append that landed but
//! whose answer was lost, the case exactly-once is about). Tests say what goes wrong in one
//! line instead of writing a hook each.
//!
//! ```
//! use mailferry_testkit::faulty::{Call, Faults};
//! use mailferry_core::ErrorKind;
//!
//! // The 4th append lands, then "crashes"; every later one too.
//! let faults = Faults::new().after_landing(Call::Append, 3, usize::MAX, ErrorKind::Fatal);
//! // The first two folder listings fail transiently.
//! let faults = faults.fail(Call::ListFolders, 0, 2, ErrorKind::Transient);
//! # let _ = faults;
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::stream;
use mailferry_core::layers::{SourceHook, TargetHook};
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Checkpoint, Error, ErrorKind, ExistingItem,
    Flags, Folder, FolderPath, Item, ItemMeta, Result, Source, SpecialUse, Target, TargetKey,
};

/// A backend call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `list_folders` (either side).
    ListFolders,
    /// `Source::list_items`.
    ListItems,
    /// `Source::fetch`.
    Fetch,
    /// `Target::ensure_folder`.
    EnsureFolder,
    /// `Target::append`.
    Append,
    /// `Target::existing`.
    Existing,
    /// `Target::read_back`.
    ReadBack,
    /// `Target::set_flags`.
    SetFlags,
    /// `Target::delete`.
    Delete,
}

const CALLS: usize = 9;

impl Call {
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
struct Fault {
    call: Call,
    after: usize,
    times: usize,
    kind: ErrorKind,
    landed: bool,
}

/// Fails calls on cue (see the module docs). Counts every call it sees.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Vec<Fault>,
    seen: [AtomicUsize; CALLS],
    failed: [AtomicUsize; CALLS],
    messages: Mutex<Vec<String>>,
}

impl Faults {
    /// No faults yet: every call passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `call` passes `after` times, then fails `times` times with an error of `kind` without
    /// reaching the store, then passes again.
    pub fn fail(mut self, call: Call, after: usize, times: usize, kind: ErrorKind) -> Self {
        self.faults.push(Fault {
            call,
            after,
            times,
            kind,
            landed: false,
        });
        self
    }

    /// Like [`Faults::fail`], but the failing calls reach the store first: what they wrote is
    /// there, only the answer is lost.
    pub fn after_landing(
        mut self,
        call: Call,
        after: usize,
        times: usize,
        kind: ErrorKind,
    ) -> Self {
        self.faults.push(Fault {
            call,
            after,
            times,
            kind,
            landed: true,
        });
        self
    }

    /// How many times `call` was made.
    pub fn calls(&self, call: Call) -> usize {
        self.seen[call.index()].load(Ordering::SeqCst)
    }

    /// How many times `call` was made to fail.
    pub fn failures(&self, call: Call) -> usize {
        self.failed[call.index()].load(Ordering::SeqCst)
    }

    /// Counts a call and says whether it fails, and whether it reaches the store first.
    fn decide(&self, call: Call) -> Option<(Error, bool)> {
        let n = self.seen[call.index()].fetch_add(1, Ordering::SeqCst);
        let fault = self
            .faults
            .iter()
            .find(|f| f.call == call && n >= f.after && n - f.after < f.times)?;
        self.failed[call.index()].fetch_add(1, Ordering::SeqCst);
        let message = format!("injected fault: {call:?} call {}", n + 1);
        if let Ok(mut m) = self.messages.lock() {
            m.push(message.clone());
        }
        Some((Error::new(fault.kind, message), fault.landed))
    }

    fn future<'a, T: Send + 'a>(
        &'a self,
        call: Call,
        pass: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        match self.decide(call) {
            None => pass,
            Some((e, landed)) => Box::pin(async move {
                if landed {
                    pass.await?;
                }
                Err(e)
            }),
        }
    }

    fn stream<'a, T: Send + 'a>(
        &'a self,
        call: Call,
        pass: impl FnOnce() -> BoxStream<'a, Result<T>>,
    ) -> BoxStream<'a, Result<T>> {
        match self.decide(call) {
            None => pass(),
            Some((e, _)) => Box::pin(stream::iter([Err(e)])),
        }
    }
}

impl SourceHook for Faults {
    fn list_folders<'a>(&'a self, inner: &'a dyn Source) -> BoxFuture<'a, Result<Vec<Folder>>> {
        self.future(Call::ListFolders, inner.list_folders())
    }

    fn list_items<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        self.stream(Call::ListItems, || inner.list_items(folder, after))
    }

    fn fetch<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        self.stream(Call::Fetch, || inner.fetch(folder, items))
    }
}

impl TargetHook for Faults {
    fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
        self.future(Call::ListFolders, inner.list_folders())
    }

    fn ensure_folder<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        self.future(Call::EnsureFolder, inner.ensure_folder(folder, special_use))
    }

    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        self.future(Call::Append, inner.append(folder, batch))
    }

    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        self.stream(Call::Existing, || inner.existing(folder))
    }

    fn read_back<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        self.stream(Call::ReadBack, || inner.read_back(folder, keys))
    }

    fn set_flags<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        self.future(Call::SetFlags, inner.set_flags(folder, changes))
    }

    fn delete<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        self.future(Call::Delete, inner.delete(folder, keys))
    }
}
