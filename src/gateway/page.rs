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

/// What a job cursor looks like, for the OpenAPI document (each query's `cursor` parameter
/// repeats it, and a test compares them): `<created_at in µs since 1970>_<id, 32 hex digits>`.
/// Sixteen digits reach the year 2286, so every cursor the pattern admits is one PostgreSQL
/// can compare with.
pub const JOB_CURSOR_PATTERN: &str = "^[0-9]{1,16}_[0-9a-f]{32}$";
/// What an audit-row cursor looks like: a row id, at most 18 digits (within a bigint).
pub const ID_CURSOR_PATTERN: &str = "^[0-9]{1,18}$";
const MAX_CURSOR_MICROS_DIGITS: usize = 16;
const MAX_ID_CURSOR_DIGITS: usize = 18;

/// The history cursor: (created_at, id) of the last job of the previous page.
pub fn encode_job_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id.simple())
}

/// A cursor of [`JOB_CURSOR_PATTERN`]; 400 for any other, saying whether its shape or its instant
/// is wrong.
pub fn decode_job_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || {
        ApiError::BadRequest(format!(
            "cursor {cursor:?} is not one this API handed out: expected <microseconds>_<32 lowercase hex digits>"
        ))
    };
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let digits = micros.strip_prefix('-').unwrap_or(micros);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !is_simple_uuid(id) {
        return Err(invalid());
    }
    let at = Some(micros)
        .filter(|micros| !micros.starts_with('-') && micros.len() <= MAX_CURSOR_MICROS_DIGITS)
        .and_then(|micros| micros.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cursor {cursor:?}: its instant is out of range (1 to {MAX_CURSOR_MICROS_DIGITS} digits of \
                 microseconds since 1970)"
            ))
        })?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

fn is_simple_uuid(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An audit-row cursor ([`ID_CURSOR_PATTERN`]): the id of the previous page's last row.
pub fn decode_id_cursor(cursor: &str) -> Result<i64, ApiError> {
    let digits = cursor.strip_prefix('-').unwrap_or(cursor);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "cursor {cursor:?} is not one this API handed out: expected a row id (digits)"
        )));
    }
    Some(cursor)
        .filter(|cursor| !cursor.starts_with('-') && cursor.len() <= MAX_ID_CURSOR_DIGITS)
        .and_then(|cursor| cursor.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cursor {cursor:?} is out of range: a row id of 1 to {MAX_ID_CURSOR_DIGITS} digits"
            ))
        })
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
        let id = "0f8e6a8e8a534c559c593c1d3c9d2b10";
        for cursor in
            ["", "abc", "12_notauuid", &format!("x_{id}"), &format!("+5_{id}"), &format!("5_{}", id.to_uppercase())]
        {
            let error = decode_job_cursor(cursor).unwrap_err();
            assert!(matches!(&error, ApiError::BadRequest(m) if m.contains("not one this API handed out")), "{cursor}");
        }
        for cursor in ["", "x", "+5", "1.5"] {
            let error = decode_id_cursor(cursor).unwrap_err();
            assert!(matches!(&error, ApiError::BadRequest(m) if m.contains("not one this API handed out")), "{cursor}");
        }
    }

    #[test]
    fn an_out_of_range_cursor_is_a_bad_request_saying_so() {
        let id = "0f8e6a8e8a534c559c593c1d3c9d2b10";
        // Chrono reads these, PostgreSQL cannot compare with them (before 4713 BC), or neither can.
        for micros in ["-210000000000000000", "-1", "99999999999999999", "99999999999999999999999"] {
            let error = decode_job_cursor(&format!("{micros}_{id}")).unwrap_err();
            assert!(matches!(&error, ApiError::BadRequest(m) if m.contains("out of range")), "{micros}: {error}");
        }
        for cursor in ["-1", "9223372036854775807", "99999999999999999999"] {
            let error = decode_id_cursor(cursor).unwrap_err();
            assert!(matches!(&error, ApiError::BadRequest(m) if m.contains("out of range")), "{cursor}: {error}");
        }
        assert_eq!(decode_id_cursor("999999999999999999").unwrap(), 999_999_999_999_999_999);
        let (at, _) = decode_job_cursor(&format!("9999999999999999_{id}")).unwrap();
        assert_eq!(at.format("%Y").to_string(), "2286");
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
