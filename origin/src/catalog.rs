//! The product catalog: queries, and writes that commit their purge intent
//! in the same transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::caching::{TAG_HOME, TAG_LIST, product_tag};
use crate::error::Result;
use crate::money::Prices;
use crate::outbox::{self, PurgeBody};
use crate::product_input::ProductInput;

/// Products per list page.
pub const PER_PAGE: u32 = 5;

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    /// Id (assigned by the database, never reused).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Longer text.
    pub description: String,
    /// Price in every currency, minor units.
    pub prices: Prices,
    /// Units in stock.
    pub stock: i64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

/// List order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// By name, case-insensitively.
    #[default]
    Name,
    /// By US dollar price, cheapest first.
    Price,
}

impl Sort {
    /// As in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Price => "price",
        }
    }
}

/// What a list page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// 1-based page.
    pub page: u32,
    /// Order.
    pub sort: Sort,
    /// Substring searched in names and descriptions.
    pub q: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductPage {
    /// 1-based page number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Matching products in all pages.
    pub total: u64,
    /// This page's products.
    pub products: Vec<Product>,
}

impl ProductPage {
    /// How many pages the matches fill (at least 1).
    pub fn pages(&self) -> u32 {
        (self.total.div_ceil(u64::from(self.per_page)).max(1)) as u32
    }
}

const SELECT: &str = "SELECT p.id, p.name, p.description, usd.amount_minor, eur.amount_minor,
        krw.amount_minor, p.stock, p.updated_at_ms
    FROM products p
    JOIN product_prices usd ON usd.product_id = p.id AND usd.currency = 'USD'
    JOIN product_prices eur ON eur.product_id = p.id AND eur.currency = 'EUR'
    JOIN product_prices krw ON krw.product_id = p.id AND krw.currency = 'KRW'";

fn product(row: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        prices: Prices {
            usd: row.get(3)?,
            eur: row.get(4)?,
            krw: row.get(5)?,
        },
        stock: row.get(6)?,
        updated_at_ms: row.get(7)?,
    })
}

/// One product.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Product>> {
    let mut statement = conn.prepare_cached(&format!("{SELECT} WHERE p.id = ?1"))?;
    Ok(statement.query_row([id], product).optional()?)
}

/// A page of products.
pub fn list(conn: &Connection, query: &ListQuery) -> Result<ProductPage> {
    // `LIKE` with `\` escaping so `%` and `_` in a search are literal.
    let pattern = query.q.as_deref().map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let filter =
        "WHERE (?1 IS NULL OR p.name LIKE ?1 ESCAPE '\\' OR p.description LIKE ?1 ESCAPE '\\')";
    let order = match query.sort {
        Sort::Name => "p.name COLLATE NOCASE, p.id",
        Sort::Price => "usd.amount_minor, p.id",
    };
    let total: u64 = conn.query_row(
        &format!("SELECT count(*) FROM products p {filter}"),
        [&pattern],
        |r| r.get(0),
    )?;
    let page = query.page.max(1);
    let offset = i64::from(page - 1) * i64::from(PER_PAGE);
    let mut statement = conn.prepare_cached(&format!(
        "{SELECT} {filter} ORDER BY {order} LIMIT ?2 OFFSET ?3"
    ))?;
    let products = statement
        .query_map(params![pattern, PER_PAGE, offset], product)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ProductPage {
        page,
        per_page: PER_PAGE,
        total,
        products,
    })
}

/// Every product, by name (the home page).
pub fn all(conn: &Connection) -> Result<Vec<Product>> {
    let mut statement =
        conn.prepare_cached(&format!("{SELECT} ORDER BY p.name COLLATE NOCASE, p.id"))?;
    Ok(statement
        .query_map([], product)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// When anything in the catalog last changed (0 if never).
pub fn changed_at_ms(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT changed_at_ms FROM catalog_state WHERE id = 1",
        [],
        |r| r.get(0),
    )?)
}

/// What the edge must forget when product `id` changes: its own pages and
/// every page listing products.
pub fn invalidation(id: i64) -> PurgeBody {
    PurgeBody {
        urls: vec![format!("/products/{id}"), format!("/api/products/{id}")],
        tags: vec![product_tag(id), TAG_LIST.to_owned(), TAG_HOME.to_owned()],
        ..Default::default()
    }
}

/// A committed write: the product as now stored (none after a delete) and
/// the outbox row that will purge the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The product after the write.
    pub product: Option<Product>,
    /// The outbox row committed with it.
    pub purge_id: i64,
}

fn write_prices(conn: &Connection, id: i64, prices: &Prices) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO product_prices (product_id, currency, amount_minor) VALUES (?1, ?2, ?3)
         ON CONFLICT (product_id, currency) DO UPDATE SET amount_minor = excluded.amount_minor",
    )?;
    for currency in crate::money::Currency::ALL {
        statement.execute(params![id, currency.code(), prices.get(currency)])?;
    }
    Ok(())
}

fn touch(conn: &Connection, now_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE catalog_state SET changed_at_ms = max(changed_at_ms + 1, ?1) WHERE id = 1",
        [now_ms],
    )?;
    Ok(())
}

fn insert(conn: &Connection, input: &ProductInput, now_ms: i64) -> Result<i64> {
    conn.execute(
        "INSERT INTO products (name, description, stock, updated_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![input.name, input.description, input.stock, now_ms],
    )?;
    let id = conn.last_insert_rowid();
    write_prices(conn, id, &input.prices)?;
    Ok(id)
}

/// Adds a product.
pub fn create(conn: &mut Connection, input: &ProductInput, now_ms: i64) -> Result<Written> {
    let tx = conn.transaction()?;
    let id = insert(&tx, input, now_ms)?;
    touch(&tx, now_ms)?;
    // A 404 for this id may be cached from before it existed.
    let purge_id = outbox::enqueue(&tx, &invalidation(id), now_ms)?;
    let product = get(&tx, id)?;
    tx.commit()?;
    Ok(Written { product, purge_id })
}

/// Replaces product `id`; `None` if there is no such product (nothing is
/// written then).
pub fn update(
    conn: &mut Connection,
    id: i64,
    input: &ProductInput,
    now_ms: i64,
) -> Result<Option<Written>> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "UPDATE products SET name = ?2, description = ?3, stock = ?4, updated_at_ms = ?5
         WHERE id = ?1",
        params![id, input.name, input.description, input.stock, now_ms],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    write_prices(&tx, id, &input.prices)?;
    touch(&tx, now_ms)?;
    let purge_id = outbox::enqueue(&tx, &invalidation(id), now_ms)?;
    let product = get(&tx, id)?;
    tx.commit()?;
    Ok(Some(Written { product, purge_id }))
}

/// Removes product `id`; `None` if there is no such product.
pub fn delete(conn: &mut Connection, id: i64, now_ms: i64) -> Result<Option<Written>> {
    let tx = conn.transaction()?;
    if tx.execute("DELETE FROM products WHERE id = ?1", [id])? == 0 {
        return Ok(None);
    }
    touch(&tx, now_ms)?;
    let purge_id = outbox::enqueue(&tx, &invalidation(id), now_ms)?;
    tx.commit()?;
    Ok(Some(Written {
        product: None,
        purge_id,
    }))
}

/// Fills an empty, never-changed catalog from the seed products (no purge:
/// nothing of this database can be cached yet). Returns how many were
/// added; 0 if the catalog was ever written.
pub fn seed(conn: &mut Connection, products: &[ProductInput], now_ms: i64) -> Result<usize> {
    let tx = conn.transaction()?;
    if changed_at_ms(&tx)? != 0 {
        return Ok(0);
    }
    for input in products {
        insert(&tx, input, now_ms)?;
    }
    touch(&tx, now_ms)?;
    tx.commit()?;
    Ok(products.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox;

    fn input(name: &str, usd: i64) -> ProductInput {
        ProductInput {
            name: name.into(),
            description: format!("about {name}"),
            prices: Prices {
                usd,
                eur: usd,
                krw: usd * 10,
            },
            stock: 1,
        }
    }

    fn catalog() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::migrations::migrate(&mut conn).unwrap();
        let products: Vec<_> = (1..=7)
            .map(|i| input(&format!("Item {i} 100%"), 1000 - i))
            .collect();
        assert_eq!(seed(&mut conn, &products, 1).unwrap(), 7);
        conn
    }

    #[test]
    fn seeding_happens_once() {
        let mut conn = catalog();
        assert_eq!(seed(&mut conn, &[input("x", 1)], 2).unwrap(), 0);
        assert_eq!(all(&conn).unwrap().len(), 7);
        assert!(outbox::pending(&conn, 10).unwrap().is_empty());
    }

    #[test]
    fn lists_page_sort_and_search() {
        let conn = catalog();
        let first = list(&conn, &ListQuery::default()).unwrap();
        assert_eq!(
            (first.total, first.pages(), first.products.len()),
            (7, 2, 5)
        );
        assert_eq!(first.products[0].name, "Item 1 100%");
        let second = list(
            &conn,
            &ListQuery {
                page: 2,
                sort: Sort::Price,
                q: None,
            },
        )
        .unwrap();
        let names: Vec<_> = second.products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Item 2 100%", "Item 1 100%"]);
        let search = |q: &str| {
            list(
                &conn,
                &ListQuery {
                    page: 1,
                    sort: Sort::Name,
                    q: Some(q.into()),
                },
            )
            .unwrap()
            .total
        };
        assert_eq!(search("item 3"), 1);
        assert_eq!(search("100%"), 7);
        assert_eq!(search("0%_"), 0, "LIKE wildcards are literal");
        assert_eq!(search("ABOUT"), 7, "descriptions, case-insensitively");
        let empty = list(
            &conn,
            &ListQuery {
                page: 9,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(empty.products.is_empty());
    }

    #[test]
    fn each_write_commits_its_purge() {
        let mut conn = catalog();
        let before = changed_at_ms(&conn).unwrap();
        let created = create(&mut conn, &input("New", 5), 10).unwrap();
        let id = created.product.as_ref().unwrap().id;
        assert_eq!(id, 8);
        let updated = update(&mut conn, id, &input("Newer", 6), 11)
            .unwrap()
            .unwrap();
        assert_eq!(updated.product.unwrap().prices.usd, 6);
        let deleted = delete(&mut conn, id, 12).unwrap().unwrap();
        assert!(get(&conn, id).unwrap().is_none());
        let rows = outbox::pending(&conn, 10).unwrap();
        let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, [created.purge_id, updated.purge_id, deleted.purge_id]);
        assert!(rows.iter().all(|r| r.purge == invalidation(id)));
        assert!(invalidation(id).tags.contains(&"product:8".to_string()));
        assert!(changed_at_ms(&conn).unwrap() > before);
        let prices: i64 = conn
            .query_row(
                "SELECT count(*) FROM product_prices WHERE product_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(prices, 0, "prices go with the product");
    }

    #[test]
    fn writes_to_missing_products_change_nothing() {
        let mut conn = catalog();
        assert!(update(&mut conn, 99, &input("x", 1), 5).unwrap().is_none());
        assert!(delete(&mut conn, 99, 5).unwrap().is_none());
        assert!(outbox::pending(&conn, 10).unwrap().is_empty());
        assert_eq!(changed_at_ms(&conn).unwrap(), 1);
    }
}
