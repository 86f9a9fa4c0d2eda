//! The state-store counterpart of [`super::Hooked`]: a [`StateHook`] overrides only the calls
//! it changes and [`HookedState`] forwards every other one, so a decorator (write timing, the
//! audit manifest) says only what it does differently and cannot drop a method it forgot.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::BoxFuture;
use crate::error::Result;
use crate::folder::FolderStatus;
use crate::item::SourceKey;
use crate::state::{FolderScope, ItemRecord, ItemStatus, StateStore, Suspect};

/// What a decorator changes about a state store; every method passes through by default.
pub trait StateHook: Send + Sync {
    /// Called for [`StateStore::checkpoint`].
    fn checkpoint<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>> {
        inner.checkpoint(scope)
    }

    /// Called for [`StateStore::set_checkpoint`].
    fn set_checkpoint<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        inner.set_checkpoint(scope, status)
    }

    /// Called for [`StateStore::lookup`].
    fn lookup<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>> {
        inner.lookup(scope, keys)
    }

    /// Called for [`StateStore::record`].
    fn record<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        inner.record(scope, records)
    }

    /// Called for [`StateStore::records`].
    fn records<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        inner.records(scope, status)
    }
}

/// A state store that forwards every call to `inner`, through `hook` where the hook has a say.
pub struct HookedState<H> {
    inner: Arc<dyn StateStore>,
    hook: H,
}

impl<H: StateHook> HookedState<H> {
    /// Wraps `inner` in `hook`.
    pub fn new(inner: Arc<dyn StateStore>, hook: H) -> Self {
        HookedState { inner, hook }
    }
}

impl<H: StateHook> StateStore for HookedState<H> {
    fn checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>> {
        self.hook.checkpoint(&*self.inner, scope)
    }

    fn set_checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        self.hook.set_checkpoint(&*self.inner, scope, status)
    }

    fn lookup<'a>(
        &'a self,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>> {
        self.hook.lookup(&*self.inner, scope, keys)
    }

    fn record<'a>(
        &'a self,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        self.hook.record(&*self.inner, scope, records)
    }

    fn records<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        self.hook.records(&*self.inner, scope, status)
    }

    fn validities<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<u64>>> {
        self.inner.validities(scope)
    }

    fn suspects<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<Suspect>>> {
        self.inner.suspects(scope)
    }

    fn add_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        suspects: &'a [Suspect],
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.add_suspects(scope, suspects)
    }

    fn remove_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.remove_suspects(scope, ids)
    }
}
