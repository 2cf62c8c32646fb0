//! Admin request bodies and the seed file: parsing and validation, pure.
//!
//! Everything is checked before the database is touched, and every
//! refusal names the field and the rule.

use serde::Deserialize;

use crate::money::{Currency, Prices};

/// Longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Largest price in minor units (keeps sums and formatting far from
/// overflow; ₩1 trillion is not a catalog price).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// Largest stock count.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A product as an admin writes it (the whole product: `PUT` replaces).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Display name.
    pub name: String,
    /// Longer text.
    #[serde(default)]
    pub description: String,
    /// Price in every currency.
    pub prices: Prices,
    /// Units in stock.
    pub stock: i64,
}

/// Why a body was refused (the message goes to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Parses and validates one product from a JSON body.
pub fn parse_product(body: &[u8]) -> Result<ProductInput, InputError> {
    let input: ProductInput = serde_json::from_slice(body)
        .map_err(|e| InputError(format!("invalid product JSON: {e}")))?;
    validate(input)
}

/// Parses and validates the seed file: a JSON array of products.
pub fn parse_seed(body: &[u8]) -> Result<Vec<ProductInput>, InputError> {
    let inputs: Vec<ProductInput> =
        serde_json::from_slice(body).map_err(|e| InputError(format!("invalid seed JSON: {e}")))?;
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, p)| validate(p).map_err(|e| InputError(format!("product [{i}]: {e}"))))
        .collect()
}

fn validate(mut input: ProductInput) -> Result<ProductInput, InputError> {
    input.name = input.name.trim().to_owned();
    if input.name.is_empty() {
        return Err(InputError("name must not be empty".into()));
    }
    if input.name.chars().count() > MAX_NAME_CHARS {
        return Err(InputError(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if input.name.chars().any(char::is_control) {
        return Err(InputError(
            "name must not contain control characters".into(),
        ));
    }
    if input.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(InputError(format!(
            "description is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    for currency in Currency::ALL {
        let amount = input.prices.get(currency);
        if amount < 0 {
            return Err(InputError(format!(
                "prices.{} must not be negative (got {amount})",
                currency.code()
            )));
        }
        if amount > MAX_AMOUNT {
            return Err(InputError(format!(
                "prices.{} must be at most {MAX_AMOUNT}",
                currency.code()
            )));
        }
    }
    if !(0..=MAX_STOCK).contains(&input.stock) {
        return Err(InputError(format!(
            "stock must be between 0 and {MAX_STOCK} (got {})",
            input.stock
        )));
    }
    Ok(input)
}

/// A product id from a URL segment: decimal digits, 1 or more.
pub fn parse_id(segment: &str) -> Result<i64, InputError> {
    let bad = || InputError(format!("bad product id `{}`", truncate(segment, 40)));
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(bad()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        r#"{"name": " Mug ", "prices": {"USD": 1200, "EUR": 1100, "KRW": 16000}, "stock": 3}"#;

    fn refusal(body: &str) -> String {
        parse_product(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn accepts_a_whole_product_and_trims_the_name() {
        let p = parse_product(GOOD.as_bytes()).unwrap();
        assert_eq!(p.name, "Mug");
        assert_eq!(p.description, "");
        assert_eq!(p.prices.krw, 16000);
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("{", "EOF"),
            ("3", "invalid type"),
            (
                &GOOD.replace("\"stock\"", "\"colour\": 1, \"stock\""),
                "unknown field `colour`",
            ),
            (&GOOD.replace("\"KRW\"", "\"GBP\""), "unknown field `GBP`"),
            (&GOOD.replace(", \"KRW\": 16000", ""), "missing field `KRW`"),
            (
                &GOOD.replace("1200", "-1"),
                "prices.USD must not be negative",
            ),
            (
                &GOOD.replace("1200", "12.5"),
                "invalid type: floating point",
            ),
            (&GOOD.replace("1200", "\"12\""), "invalid type: string"),
            (
                &GOOD.replace("1200", "10000000000000"),
                "prices.USD must be at most",
            ),
            (
                &GOOD.replace("\"stock\": 3", "\"stock\": -2"),
                "stock must be between",
            ),
            (&GOOD.replace(", \"stock\": 3", ""), "missing field `stock`"),
            (&GOOD.replace(" Mug ", "  "), "name must not be empty"),
            (&GOOD.replace(" Mug ", "a\\u0007b"), "control characters"),
            (&GOOD.replace(" Mug ", &"x".repeat(201)), "name is longer"),
        ];
        for (body, expected) in cases {
            let message = refusal(body);
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn ids_are_positive_decimal_numbers() {
        assert_eq!(parse_id("7"), Ok(7));
        assert_eq!(parse_id("007"), Ok(7));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "1e3",
            "99999999999999999999",
            " 1",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seed_errors_say_which_product() {
        let seed = format!("[{GOOD}, {}]", GOOD.replace("1200", "-5"));
        let error = parse_seed(seed.as_bytes()).unwrap_err().0;
        assert!(error.starts_with("product [1]: prices.USD"), "{error}");
        assert_eq!(parse_seed(format!("[{GOOD}]").as_bytes()).unwrap().len(), 1);
    }
}
