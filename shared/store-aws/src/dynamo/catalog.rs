//! Device type policies, releases and rollouts, and the per-type release view that `check`
//! reads in one request. Every write of a rollout (and of a release some active rollout
//! offers) rewrites the view in the same transaction, conditioned on the view's revision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::audit::AuditEvent;
use ota_core::cursor;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ids::{DeviceType, Version};
use ota_core::ports::{Page, PageRequest, ReleaseOption, ReleaseView, StoreError, StoreResult};
use ota_core::release::{Release, ReleaseFilter};
use ota_core::rollout::Rollout;
use serde::{Deserialize, Serialize};

use ota_core::retry;

use super::DynamoMeta;
use super::item::{Item, doc, get_n, get_s, item, micros, n, s};
use super::keys;
use super::ops::{Query, Range, Take, TxFail, put};

/// The release view item's record: the active rollouts of a type with their releases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewDoc {
    pub options: Vec<(Rollout, Release)>,
}

/// The view as read, with the revision its rewrite is conditioned on (None: no item yet).
pub struct StoredView {
    pub doc: ViewDoc,
    pub revision: Option<i64>,
}

impl StoredView {
    /// The view with `rollout`'s entry replaced (or dropped when it is not active), using
    /// `release` for a rollout the view did not hold yet.
    pub fn with_rollout(&self, rollout: &Rollout, release: Option<&Release>) -> Option<ViewDoc> {
        let mut d = self.doc.clone();
        let old = d.options.iter().position(|(r, _)| r.id == rollout.id);
        let fw = old
            .and_then(|i| d.options.get(i))
            .map(|(_, f)| f.clone())
            .or_else(|| release.cloned());
        if let Some(i) = old {
            d.options.remove(i);
        }
        if rollout.state.offers() {
            d.options.push((rollout.clone(), fw?));
            d.options.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        }
        Some(d)
    }
}

fn release_item(f: &Release) -> StoreResult<Item> {
    let order = keys::release_order(&f.version.sort_key(), f.build_number, &f.id);
    let mut attrs = vec![
        // `state` is a reserved word in expressions.
        ("fst", s(f.state.as_str())),
        ("upd", n(micros(f.updated_at))),
        ("GSI1PK", s(keys::ALL_RELEASES)),
        ("GSI1SK", s(order.clone())),
        ("GSI2PK", s(keys::releases_of_type(f.device_type.as_str()))),
        ("GSI2SK", s(order)),
    ];
    if let Some(sha) = &f.image_sha256 {
        attrs.push((
            "GSI3PK",
            s(keys::release_image(f.device_type.as_str(), sha)),
        ));
        attrs.push(("GSI3SK", s(&f.id)));
    }
    item(keys::release(&f.id), keys::RELEASE_SK, f, attrs)
}

impl DynamoMeta {
    pub(super) async fn read_view(&self, device_type: &str) -> StoreResult<StoredView> {
        let it = self
            .get(&keys::device_type(device_type), keys::VIEW)
            .await?;
        Ok(match it {
            Some(it) => StoredView {
                doc: doc(&it)?,
                revision: get_n(&it, "vrev"),
            },
            None => StoredView {
                doc: ViewDoc::default(),
                revision: None,
            },
        })
    }

    /// The write of a new view, conditioned on the revision it was computed from.
    pub(super) fn view_write(
        &self,
        device_type: &str,
        from: &StoredView,
        doc: &ViewDoc,
    ) -> StoreResult<TransactWriteItem> {
        let next = from.revision.unwrap_or(0) + 1;
        let it = item(
            keys::device_type(device_type),
            keys::VIEW,
            doc,
            [("vrev", n(next))],
        )?;
        match from.revision {
            Some(r) => put(it, Some("vrev = :vrev"), &[(":vrev", n(r))], &self.table),
            None => put(it, Some("attribute_not_exists(PK)"), &[], &self.table),
        }
    }

    /// Forgets this instance's cached view of a type it just changed.
    pub(super) fn invalidate_view(&self, device_type: &DeviceType) {
        if let Ok(mut views) = self.views.lock() {
            let entry = views.entry(device_type.to_string()).or_default();
            entry.generation += 1;
            entry.read = None;
        }
    }

    /// The type's release view from this instance's cache when it was read less than
    /// `max_age` ago, else read (and cached, unless caching is off).
    pub(super) async fn release_view_cached(
        &self,
        device_type: &DeviceType,
        max_age: Duration,
    ) -> StoreResult<Arc<ReleaseView>> {
        let ttl = self.options.view_cache;
        let mut generation = 0;
        if let Ok(mut views) = self.views.lock() {
            let entry = views.entry(device_type.to_string()).or_default();
            generation = entry.generation;
            if let Some((at, view)) = &entry.read
                && at.elapsed() < max_age
            {
                return Ok(view.clone());
            }
        }
        // One Query: the policy (chip) and the view item, nothing else of the partition.
        let items = self
            .query(
                &Query {
                    index: None,
                    pk: keys::device_type(device_type.as_str()),
                    range: Range::AtLeast(keys::POLICY.to_owned()),
                    descending: false,
                },
                2,
                |_| Take::Keep,
            )
            .await?;
        let mut view = ReleaseView::default();
        for it in &items {
            match get_s(it, "SK") {
                Some(keys::POLICY) => view.chip = Some(doc::<DeviceTypePolicy>(it)?.chip),
                Some(keys::VIEW) => {
                    view.options = doc::<ViewDoc>(it)?
                        .options
                        .into_iter()
                        .map(|(rollout, release)| Arc::new(ReleaseOption { rollout, release }))
                        .collect();
                }
                _ => {}
            }
        }
        let view = Arc::new(view);
        if !ttl.is_zero()
            && let Ok(mut views) = self.views.lock()
        {
            let entry = views.entry(device_type.to_string()).or_default();
            if entry.generation == generation {
                entry.read = Some((Instant::now(), view.clone()));
            }
        }
        Ok(view)
    }

    // --- device types ---

    pub(super) async fn get_policy(
        &self,
        name: &DeviceType,
    ) -> StoreResult<Option<DeviceTypePolicy>> {
        match self
            .get(&keys::device_type(name.as_str()), keys::POLICY)
            .await?
        {
            Some(it) => doc(&it).map(Some),
            None => Ok(None),
        }
    }

    fn policy_item(p: &DeviceTypePolicy) -> StoreResult<Item> {
        item(
            keys::device_type(p.name.as_str()),
            keys::POLICY,
            p,
            [
                ("GSI1PK", s(keys::DEVICE_TYPES)),
                ("GSI1SK", s(p.name.as_str())),
            ],
        )
    }

    pub(super) async fn write_policy(
        &self,
        p: &DeviceTypePolicy,
        only_new: bool,
    ) -> StoreResult<bool> {
        let cond = only_new.then_some("attribute_not_exists(PK)");
        let out = self.put_item(Self::policy_item(p)?, cond, &[]).await;
        self.invalidate_view(&p.name);
        match out {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) if only_new => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn list_policies(
        &self,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceTypePolicy>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let items = self
            .query(
                &Query {
                    index: Some("GSI1"),
                    pk: keys::DEVICE_TYPES.to_owned(),
                    range: after.map_or(Range::All, Range::Above),
                    descending: false,
                },
                page.limit as usize + 1,
                |_| Take::Keep,
            )
            .await?;
        let policies = items
            .iter()
            .map(doc)
            .collect::<StoreResult<Vec<DeviceTypePolicy>>>()?;
        Ok(cursor::paginate(policies, page.limit, |p| {
            p.name.to_string()
        }))
    }

    // --- releases ---

    pub(super) async fn put_new_release(&self, f: &Release) -> StoreResult<()> {
        let claim = item(
            keys::device_type(f.device_type.as_str()),
            keys::version_claim(&f.version),
            &f.id,
            [],
        )?;
        let writes = vec![
            put(
                release_item(f)?,
                Some("attribute_not_exists(PK)"),
                &[],
                &self.table,
            )?,
            put(claim, Some("attribute_not_exists(PK)"), &[], &self.table)?,
        ];
        match self.transact(writes).await {
            Ok(()) => Ok(()),
            Err(TxFail::Cancelled(reasons)) if TxFail::condition_failed(&reasons, 1) => {
                Err(StoreError::Conflict(format!(
                    "version {} of device type {} already exists",
                    f.version, f.device_type
                )))
            }
            Err(TxFail::Cancelled(reasons)) if TxFail::condition_failed(&reasons, 0) => Err(
                StoreError::Conflict(format!("a release with id {} already exists", f.id)),
            ),
            Err(TxFail::Cancelled(reasons)) => Err(StoreError::Unavailable(format!(
                "creating the release raced another write: {reasons:?}"
            ))),
            Err(TxFail::Store(e)) => Err(e),
        }
    }

    pub(super) async fn release_doc(&self, id: &str) -> StoreResult<Option<Release>> {
        match self.get(&keys::release(id), keys::RELEASE_SK).await? {
            Some(it) => doc(&it).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn find_release_doc(
        &self,
        dt: &DeviceType,
        v: &Version,
    ) -> StoreResult<Option<Release>> {
        let Some(claim) = self
            .get(&keys::device_type(dt.as_str()), &keys::version_claim(v))
            .await?
        else {
            return Ok(None);
        };
        let id: String = doc(&claim)?;
        self.release_doc(&id).await
    }

    pub(super) async fn list_release_docs(
        &self,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>> {
        let (index, pk) = match &filter.device_type {
            Some(dt) => ("GSI2", keys::releases_of_type(dt.as_str())),
            None => ("GSI1", keys::ALL_RELEASES.to_owned()),
        };
        self.newest_first(index, vec![pk], None, page, |f: &Release| filter.matches(f))
            .await
    }

    pub(super) async fn replace_release(
        &self,
        f: &Release,
        expect: &Release,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let dt = f.device_type.as_str();
        for round in 0..retry::ROUNDS {
            let view = self.read_view(dt).await?;
            let mut writes = vec![put(
                release_item(f)?,
                Some("fst = :st AND upd = :upd"),
                &[
                    (":st", s(expect.state.as_str())),
                    (":upd", n(micros(expect.updated_at))),
                ],
                &self.table,
            )?];
            let mut new_view = view.doc.clone();
            let mut touched = false;
            for (_, fw) in new_view.options.iter_mut().filter(|(_, fw)| fw.id == f.id) {
                *fw = f.clone();
                touched = true;
            }
            if touched {
                writes.push(self.view_write(dt, &view, &new_view)?);
            }
            // In the same transaction: only the writer whose change is stored records it.
            writes.push(self.audit_write(event)?);
            match self.transact(writes).await {
                Ok(()) => {
                    self.invalidate_view(&f.device_type);
                    return Ok(());
                }
                Err(TxFail::Cancelled(reasons)) if TxFail::condition_failed(&reasons, 0) => {
                    return Err(match self.release_doc(&f.id).await? {
                        None => StoreError::NotFound,
                        Some(_) => StoreError::Conflict(format!(
                            "firmware {} was changed meanwhile (expected it {} as of {})",
                            f.id,
                            expect.state.as_str(),
                            expect.updated_at
                        )),
                    });
                }
                Err(TxFail::Cancelled(_)) => retry::backoff(round).await,
                Err(TxFail::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the release view is too busy; retry".into(),
        ))
    }
}
