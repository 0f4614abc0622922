//! Pagination: bounded page sizes and opaque cursors over a stable order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::ApiError;

/// The page size asked for, or `default`; 400 outside 1..=`max`.
pub fn limit(asked: Option<u32>, default: u32, max: u32) -> Result<i64, ApiError> {
    match asked.unwrap_or(default) {
        size if (1..=max).contains(&size) => Ok(i64::from(size)),
        size => Err(ApiError::BadRequest(format!("limit must be between 1 and {max}, got {size}"))),
    }
}

/// Splits a page fetched with one row more than `limit`: the rows to return and whether more follow.
pub fn split<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

/// The history cursor: (created_at, id) of the last job of the previous page.
pub fn encode_job_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id.simple())
}

pub fn decode_job_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::BadRequest(format!("cursor {cursor:?} is not one this API handed out"));
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let at = micros.parse::<i64>().ok().and_then(DateTime::<Utc>::from_timestamp_micros).ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

/// An audit-row cursor: the id of the previous page's last row.
pub fn decode_id_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("cursor {cursor:?} is not one this API handed out")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_cursor_round_trips_to_the_microsecond() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_job_cursor(&encode_job_cursor(at, id)).unwrap(), (at, id));
    }

    #[test]
    fn a_forged_cursor_is_a_bad_request() {
        for cursor in ["", "abc", "12_notauuid", "x_0f8e6a8e8a534c559c593c1d3c9d2b10"] {
            assert!(matches!(decode_job_cursor(cursor), Err(ApiError::BadRequest(_))), "{cursor}");
        }
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some(100), 20, 100).unwrap(), 100);
        assert!(limit(Some(0), 20, 100).is_err());
        assert!(limit(Some(101), 20, 100).is_err());
    }

    #[test]
    fn split_reports_whether_another_page_follows() {
        assert_eq!(split(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(split(vec![1, 2], 2), (vec![1, 2], false));
    }
}
