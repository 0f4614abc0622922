//! Integers as JSON Schema counts them: `8` and `8.0` alike (a number with no fractional part).
//! For request fields the API documents as integers: `#[serde(deserialize_with = ...)]`.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{Error, Unexpected, Visitor},
};

/// An integer field; `8.0` reads as 8, `8.5` and out-of-range values are refused.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_any(IntegerVisitor(PhantomData))
}

/// An optional integer field (null or absent is None).
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Ok(Option::<Integral<T>>::deserialize(deserializer)?.map(|Integral(value)| value))
}

struct Integral<T>(T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Integral<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        integer(deserializer).map(Integral)
    }
}

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an integer within the field's range")
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<T, E> {
        // 2^63: the first f64 past i64's range.
        if value.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value) {
            self.visit_i64(value as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional_integer")]
        limit: Option<u32>,
        #[serde(default, deserialize_with = "super::integer")]
        count: i32,
    }

    fn read(value: serde_json::Value) -> Result<(Option<u32>, i32), String> {
        serde_json::from_value::<Body>(value).map(|body| (body.limit, body.count)).map_err(|error| error.to_string())
    }

    #[test]
    fn an_integral_float_is_an_integer_and_anything_else_is_refused() {
        assert_eq!(read(json!({"limit": 89.0, "count": -3.0})), Ok((Some(89), -3)));
        assert_eq!(read(json!({"limit": 89, "count": 0})), Ok((Some(89), 0)));
        assert_eq!(read(json!({"limit": null})), Ok((None, 0)));
        assert_eq!(read(json!({})), Ok((None, 0)));
        for refused in [json!({"limit": 8.5}), json!({"limit": -1}), json!({"limit": 1e300}), json!({"limit": "8"})] {
            let error = read(refused.clone()).unwrap_err();
            assert!(error.contains("integer"), "{refused}: {error}");
        }
        assert!(read(json!({"count": 2_147_483_648_u64})).is_err());
    }
}
