//! Currencies the catalog prices in, and how amounts are shown.

use serde::{Deserialize, Serialize};

/// A supported currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    /// US dollars, in cents.
    Usd,
    /// Euros, in cents.
    Eur,
    /// Korean won (no minor unit).
    Krw,
}

impl Currency {
    /// Every currency, in display order.
    pub const ALL: [Currency; 3] = [Currency::Usd, Currency::Eur, Currency::Krw];

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Krw => "KRW",
        }
    }

    /// The currency for an ISO code (as sent in the `currency` cookie).
    pub fn from_code(code: &str) -> Option<Currency> {
        Currency::ALL.into_iter().find(|c| c.code() == code)
    }

    fn symbol(self) -> &'static str {
        match self {
            Currency::Usd => "$",
            Currency::Eur => "€",
            Currency::Krw => "₩",
        }
    }

    fn decimals(self) -> u32 {
        match self {
            Currency::Usd | Currency::Eur => 2,
            Currency::Krw => 0,
        }
    }

    /// `amount_minor` for people: `$1,234.50`, `€18.50`, `₩26,000`.
    pub fn format(self, amount_minor: i64) -> String {
        let sign = if amount_minor < 0 { "-" } else { "" };
        let amount = amount_minor.unsigned_abs();
        let scale = 10u64.pow(self.decimals());
        let whole = group_thousands(amount / scale);
        match self.decimals() {
            0 => format!("{sign}{}{whole}", self.symbol()),
            d => format!(
                "{sign}{}{whole}.{:0width$}",
                self.symbol(),
                amount % scale,
                width = d as usize
            ),
        }
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A product's price in every supported currency, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// US cents.
    #[serde(rename = "USD")]
    pub usd: i64,
    /// Euro cents.
    #[serde(rename = "EUR")]
    pub eur: i64,
    /// Won.
    #[serde(rename = "KRW")]
    pub krw: i64,
}

impl Prices {
    /// The amount in `currency`.
    pub fn get(&self, currency: Currency) -> i64 {
        match currency {
            Currency::Usd => self.usd,
            Currency::Eur => self.eur,
            Currency::Krw => self.krw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_each_currency() {
        assert_eq!(Currency::Usd.format(199), "$1.99");
        assert_eq!(Currency::Usd.format(123_456_705), "$1,234,567.05");
        assert_eq!(Currency::Eur.format(5), "€0.05");
        assert_eq!(Currency::Krw.format(26_000), "₩26,000");
        assert_eq!(Currency::Krw.format(999), "₩999");
        assert_eq!(Currency::Krw.format(-1000), "-₩1,000");
    }

    #[test]
    fn codes_round_trip() {
        for c in Currency::ALL {
            assert_eq!(Currency::from_code(c.code()), Some(c));
        }
        assert_eq!(Currency::from_code("usd"), None);
    }
}
