//! HTML pages. Every piece of catalog or request data is escaped; asset
//! links come from the manifest, so a page always names current versions.

use std::fmt::Write as _;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::asset_fallback;
use crate::assets::Manifest;
use crate::catalog::{ListQuery, Product, ProductPage};
use crate::money::Currency;
use crate::request_params::Lang;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The words of the interface.
struct Words {
    shop: &'static str,
    featured: &'static str,
    all_products: &'static str,
    in_stock: &'static str,
    sold_out: &'static str,
    account: &'static str,
    prices_in: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    const EN: Words = Words {
        shop: "Edge Shop",
        featured: "Our products",
        all_products: "All products",
        in_stock: "in stock",
        sold_out: "Sold out",
        account: "Your account",
        prices_in: "Prices in",
    };
    const KO: Words = Words {
        shop: "엣지 상점",
        featured: "상품 목록",
        all_products: "전체 상품",
        in_stock: "개 재고 있음",
        sold_out: "품절",
        account: "내 계정",
        prices_in: "표시 통화",
    };
    match lang {
        Lang::En => &EN,
        Lang::Ko => &KO,
    }
}

/// Every page: its assets linked as `asset_fallback` links them.
fn layout(lang: Lang, title: &str, assets: &Manifest, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n{head}</head>\n<body>\n\
         <header><a href=\"/\">{logo} {shop}</a> \
         <a href=\"/products\">{all}</a> <a href=\"/account\">{account}</a></header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n",
        lang = lang.code(),
        title = escape(title),
        head = asset_fallback::head(assets, "css/app.css", "js/app.js"),
        logo = asset_fallback::img(
            assets,
            "img/logo.svg",
            "alt=\"\" width=\"32\" height=\"32\""
        ),
        shop = words(lang).shop,
        all = words(lang).all_products,
        account = words(lang).account,
    )
}

fn stock(lang: Lang, stock: i64) -> String {
    match stock {
        0 => words(lang).sold_out.to_owned(),
        n => format!("{n} {}", words(lang).in_stock),
    }
}

/// `/`: every product, priced in the visitor's currency, in their language.
pub fn home(lang: Lang, currency: Currency, products: &[Product], assets: &Manifest) -> String {
    let w = words(lang);
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"currency\">{} {}</p>\n<ul class=\"products\">\n",
        w.featured,
        w.prices_in,
        currency.code()
    );
    for p in products {
        let _ = writeln!(
            body,
            "<li><a href=\"/products/{id}\">{name}</a> <span class=\"price\">{price}</span> \
             <span class=\"stock\">{stock}</span></li>",
            id = p.id,
            name = escape(&p.name),
            price = escape(&currency.format(p.prices.get(currency))),
            stock = stock(lang, p.stock),
        );
    }
    body.push_str("</ul>\n");
    layout(lang, w.shop, assets, &body)
}

fn price_list(product: &Product) -> String {
    let mut out = String::from("<ul class=\"prices\">");
    for c in Currency::ALL {
        let _ = write!(
            out,
            "<li data-currency=\"{}\">{}</li>",
            c.code(),
            escape(&c.format(product.prices.get(c)))
        );
    }
    out.push_str("</ul>");
    out
}

/// `/products/{id}`: one product, every price.
pub fn product(product: &Product, assets: &Manifest) -> String {
    let body = format!(
        "<article class=\"product\" data-id=\"{id}\">\n<h1>{name}</h1>\n<p>{description}</p>\n\
         {prices}\n<p class=\"stock\">{stock}</p>\n</article>\n",
        id = product.id,
        name = escape(&product.name),
        description = escape(&product.description),
        prices = price_list(product),
        stock = stock(Lang::En, product.stock),
    );
    layout(Lang::En, &product.name, assets, &body)
}

fn list_href(query: &ListQuery, page: u32) -> String {
    let mut href = format!("/products?page={page}&sort={}", query.sort.as_str());
    if let Some(q) = &query.q {
        let _ = write!(href, "&q={}", utf8_percent_encode(q, NON_ALPHANUMERIC));
    }
    escape(&href)
}

/// `/products`: one page of the list.
pub fn product_list(page: &ProductPage, query: &ListQuery, assets: &Manifest) -> String {
    let mut body = String::from("<h1>All products</h1>\n");
    if let Some(q) = &query.q {
        let _ = writeln!(
            body,
            "<p class=\"search\">{} results for “{}”</p>",
            page.total,
            escape(q)
        );
    }
    body.push_str("<ul class=\"products\">\n");
    for p in &page.products {
        let _ = writeln!(
            body,
            "<li><a href=\"/products/{}\">{}</a> {}</li>",
            p.id,
            escape(&p.name),
            price_list(p)
        );
    }
    body.push_str("</ul>\n<nav>");
    if page.page > 1 {
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"{}\">←</a> ",
            list_href(query, page.page - 1)
        );
    }
    let _ = write!(body, "{} / {}", page.page, page.pages());
    if page.page < page.pages() {
        let _ = write!(
            body,
            " <a rel=\"next\" href=\"{}\">→</a>",
            list_href(query, page.page + 1)
        );
    }
    body.push_str("</nav>\n");
    layout(Lang::En, "All products", assets, &body)
}

/// `/account`: the signed-in user's page (`user` is a label derived from
/// the session, never the session itself).
pub fn account(user: Option<&str>, assets: &Manifest) -> String {
    let body = match user {
        Some(user) => format!(
            "<h1>Your account</h1>\n<p class=\"user\">Signed in as {}</p>\n",
            escape(user)
        ),
        None => "<h1>Your account</h1>\n<p>You are not signed in.</p>\n".to_owned(),
    };
    layout(Lang::En, "Your account", assets, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Sort;
    use crate::money::Prices;

    fn product_named(name: &str) -> Product {
        Product {
            id: 3,
            name: name.into(),
            description: "<b>bold</b> & \"quoted\"".into(),
            prices: Prices {
                usd: 1999,
                eur: 1850,
                krw: 26000,
            },
            stock: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn product_page_escapes_catalog_data() {
        let html = product(
            &product_named("<script>alert(1)</script>"),
            &Manifest::default(),
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
        assert!(html.contains("$19.99") && html.contains("€18.50") && html.contains("₩26,000"));
        assert!(html.contains("Sold out"));
    }

    #[test]
    fn home_speaks_the_visitors_language_and_currency() {
        let products = [product_named("Mug")];
        let en = home(Lang::En, Currency::Usd, &products, &Manifest::default());
        let ko = home(Lang::Ko, Currency::Krw, &products, &Manifest::default());
        assert!(en.contains("lang=\"en\"") && en.contains("Our products") && en.contains("$19.99"));
        assert!(ko.contains("lang=\"ko\"") && ko.contains("상품 목록") && ko.contains("₩26,000"));
        assert!(!ko.contains("$19.99"));
    }

    #[test]
    fn list_links_keep_the_query_escaped() {
        let page = ProductPage {
            page: 2,
            per_page: 5,
            total: 11,
            products: vec![product_named("Mug")],
        };
        let query = ListQuery {
            page: 2,
            sort: Sort::Price,
            q: Some("<a&b>".into()),
        };
        let html = product_list(&page, &query, &Manifest::default());
        assert!(
            html.contains("href=\"/products?page=1&amp;sort=price&amp;q=%3Ca%26b%3E\""),
            "{html}"
        );
        assert!(html.contains("href=\"/products?page=3&amp;sort=price&amp;q=%3Ca%26b%3E\""));
        assert!(html.contains("results for “&lt;a&amp;b&gt;”"));
        assert!(html.contains("2 / 3"));
    }
}
