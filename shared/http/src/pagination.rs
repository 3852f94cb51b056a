//! `?limit=&cursor=&since=` in, `{"items": [...], "next_cursor": ...}` out.

use ota_core::ports::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiResult, Problem};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn into_request(self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
        if limit == 0 || limit > PageRequest::MAX_LIMIT {
            return Err(Problem::bad_request(
                "limit",
                format!("limit must be between 1 and {}", PageRequest::MAX_LIMIT),
            ));
        }
        Ok(PageRequest {
            limit,
            cursor: self.cursor.filter(|c| !c.is_empty()),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(p: Page<T>) -> Self {
        Self {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// An optional RFC 3339 lower bound of a list (`?since=`).
pub fn since(value: Option<&str>) -> ApiResult<Option<time::OffsetDateTime>> {
    value
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| Problem::bad_request("since", "must be an RFC 3339 time"))
        })
        .transpose()
}
