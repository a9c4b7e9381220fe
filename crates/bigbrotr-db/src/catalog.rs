//! The read side's catalog: what the `public` schema holds (tables, views and their columns,
//! types and keys) and every read query the API and the DVM run over it. Identifiers come only
//! from the discovered catalog (quoted), values only as bind parameters: nothing a client sends is
//! ever spliced into SQL.
//!
//! Rows are rendered to JSON by PostgreSQL in the original's shapes (bytea as hex, dates and
//! timestamps as text, numeric as a float, JSON as JSON). Pages are ordered by a total order (the
//! requested sort column, then the key) so that keyset pagination ("rows after this key") is
//! exact; the key of a page's last row comes back as PostgreSQL text, which casts back to the
//! column's type without loss.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::{DbError, Result};
use crate::refresher::quote_ident;

/// What a column's values are, as far as filtering, ordering and rendering go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `smallint`, `integer`, `bigint` (and `oid`): with their ranges.
    Integer {
        /// The smallest value.
        min: i64,
        /// The largest value.
        max: i64,
    },
    /// `real`, `double precision`.
    Float,
    /// `numeric` (rendered as a float, as the original does).
    Numeric,
    /// `boolean`.
    Bool,
    /// `text`, `character varying`, `character`, `name`.
    Text,
    /// `bytea` (rendered and filtered as hex).
    Bytea,
    /// `date`.
    Date,
    /// `timestamp without time zone`.
    Timestamp,
    /// `timestamp with time zone`.
    Timestamptz,
    /// `json`: rendered, not filtered (it has no equality).
    Json,
    /// `jsonb`: filtered by equality and containment.
    Jsonb,
    /// `text[]`: filtered by containment of one element.
    TextArray,
    /// Anything else: rendered by PostgreSQL, neither filtered nor ordered.
    Other,
}

impl ColumnKind {
    /// The kind of a `format_type()` name.
    pub fn of(pg_type: &str) -> Self {
        match pg_type {
            "smallint" => Self::Integer {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            "integer" => Self::Integer {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            "bigint" => Self::Integer {
                min: i64::MIN,
                max: i64::MAX,
            },
            "oid" => Self::Integer {
                min: 0,
                max: u32::MAX.into(),
            },
            "real" | "double precision" => Self::Float,
            "numeric" => Self::Numeric,
            "boolean" => Self::Bool,
            "text" | "name" => Self::Text,
            "bytea" => Self::Bytea,
            "date" => Self::Date,
            "timestamp without time zone" => Self::Timestamp,
            "timestamp with time zone" => Self::Timestamptz,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "text[]" => Self::TextArray,
            other
                if other.starts_with("character varying")
                    || other.starts_with("character(")
                    || other == "character" =>
            {
                Self::Text
            }
            other if other.starts_with("numeric(") => Self::Numeric,
            _ => Self::Other,
        }
    }

    /// Whether the column can be a sort (and keyset) column: every kind with a total order.
    pub fn orderable(self) -> bool {
        !matches!(
            self,
            Self::Json | Self::Jsonb | Self::TextArray | Self::Other
        )
    }

    /// Whether the column can be filtered at all.
    pub fn filterable(self) -> bool {
        !matches!(self, Self::Json | Self::Other)
    }
}

/// One column of a catalog object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as `format_type()` spells it (`bigint`, `timestamp with time zone`, `text[]`).
    pub pg_type: String,
    /// What it is for filtering, ordering and rendering.
    pub kind: ColumnKind,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// A table or view of the `public` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogObject {
    /// Its name.
    pub name: String,
    /// True for views, materialized views and the statistics tables a `<name>_refresh()`
    /// function maintains (6.6.9's materialized views, tables since migration 0004): what a
    /// client of the original saw as a view still reads as one.
    pub is_view: bool,
    /// Its columns, in table order.
    pub columns: Vec<Column>,
    /// The primary key (or, without one, the first unique non-partial index on plain columns),
    /// as indexes into `columns`; empty when there is none.
    pub key: Vec<usize>,
}

impl CatalogObject {
    /// The column named `name`, with its index.
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, column)| column.name == name)
    }

    /// The key's column names.
    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }

    /// Whether pages can be walked by key: a key whose columns are all non-null and ordered.
    pub fn keyset_capable(&self) -> bool {
        !self.key.is_empty()
            && self.key.iter().all(|&i| {
                let column = &self.columns[i];
                !column.nullable && column.kind.orderable()
            })
    }
}

/// A comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` (on `text[]`: the array contains the element; on jsonb: equality).
    Eq,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `ILIKE` (text columns only).
    ILike,
    /// `@>`: jsonb containment.
    Contains,
}

/// A filter's value, already checked against the column's type by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer (bound as `bigint`, cast to the column's integer type).
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Bytes (bytea columns).
    Bytes(Vec<u8>),
    /// Text, cast to the column's type by PostgreSQL (`text`, `numeric`, dates, JSON).
    Text(String),
}

/// One filter: `column op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Index of the column.
    pub column: usize,
    /// The comparison.
    pub op: Op,
    /// The value.
    pub value: Value,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending (NULLs last, PostgreSQL's default).
    Asc,
    /// Descending (NULLs first, PostgreSQL's default).
    Desc,
}

/// How a list's `total` is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMode {
    /// Not at all.
    None,
    /// Exactly up to this many rows; past it, the planner's estimate (never less than the cap).
    Capped(u64),
}

/// One page of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Filters, ANDed.
    pub conditions: Vec<Condition>,
    /// The sort column and direction the client asked for, if any. The page order is always
    /// completed with the key (same direction) when the object has one.
    pub sort: Option<(usize, Direction)>,
    /// Keyset position: the order columns' values (PostgreSQL text, NULL as `None`) of the last
    /// row of the previous page, as [`ListPage::last_key`] returned them.
    pub after: Option<Vec<Option<String>>>,
    /// Rows per page.
    pub limit: u32,
    /// Rows to skip (offset pagination).
    pub offset: u64,
    /// How `total` is computed.
    pub total: TotalMode,
}

/// The row count of a list, exact or estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    /// The count.
    pub value: u64,
    /// Whether it is exact (otherwise the planner's estimate, at least the cap).
    pub exact: bool,
}

/// One page of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The rows, each a JSON object (text).
    pub rows: Vec<String>,
    /// The order columns' values of the last row (for the next page's [`ListQuery::after`]),
    /// when there are more rows.
    pub last_key: Option<Vec<Option<String>>>,
    /// Whether rows remain after this page.
    pub has_more: bool,
    /// The count, when asked for.
    pub total: Option<Total>,
}

/// How long one read may take, server-side (`statement_timeout`) and client-side.
#[derive(Debug, Clone, Copy)]
pub struct ReadBudget(pub Duration);

impl Brotr {
    /// Discovers the `public` schema's tables, views and materialized views the connected role
    /// may read, with their columns and keys. Partitions and objects that belong to an extension
    /// (`pg_stat_statements`) are not listed: they are not the schema's objects.
    pub async fn discover_catalog(&self) -> Result<Vec<CatalogObject>> {
        self.transact(TimeoutCategory::Query, |conn| {
            Box::pin(async move {
                let objects = sqlx::query(DISCOVER_OBJECTS)
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await?;
                let oids: Vec<i64> = objects.iter().map(|row| row.get::<i64, _>(0)).collect();
                let columns = sqlx::query(DISCOVER_COLUMNS)
                    .persistent(false)
                    .bind(&oids)
                    .fetch_all(&mut *conn)
                    .await?;
                let keys = sqlx::query(DISCOVER_KEYS)
                    .persistent(false)
                    .bind(&oids)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut out = Vec::with_capacity(objects.len());
                for row in &objects {
                    let oid: i64 = row.get(0);
                    let mut object = CatalogObject {
                        name: row.get(1),
                        is_view: row.get(2),
                        columns: Vec::new(),
                        key: Vec::new(),
                    };
                    for column in columns.iter().filter(|c| c.get::<i64, _>(0) == oid) {
                        let pg_type: String = column.get(2);
                        object.columns.push(Column {
                            name: column.get(1),
                            kind: ColumnKind::of(&pg_type),
                            pg_type,
                            nullable: column.get(3),
                        });
                    }
                    if let Some(key) = keys.iter().find(|k| k.get::<i64, _>(0) == oid) {
                        let names: Vec<String> = key.get(1);
                        let indexes: Option<Vec<usize>> = names
                            .iter()
                            .map(|name| object.column(name).map(|(i, _)| i))
                            .collect();
                        object.key = indexes.unwrap_or_default();
                    }
                    if !object.columns.is_empty() {
                        out.push(object);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// One page of `object` (see [`ListQuery`]), in one read-only transaction bounded by
    /// `budget`.
    pub async fn catalog_list(
        &self,
        object: &CatalogObject,
        query: &ListQuery,
        budget: ReadBudget,
    ) -> Result<ListPage> {
        let order = order_terms(object, query.sort);
        let plan = list_sql(object, query, &order)?;
        let total_mode = query.total;
        let limit = query.limit as usize;
        let named = self.named_statements();
        self.read_only(budget, move |conn| {
            let plan = plan.clone();
            Box::pin(async move {
                let mut data = sqlx::query(AssertSqlSafe(plan.data.clone()));
                data = bind_all(data, &plan.data_binds, named);
                let rows = data.fetch_all(&mut *conn).await?;
                let has_more = rows.len() > limit;
                let mut out = Vec::with_capacity(rows.len().min(limit));
                let mut last_key = None;
                for (index, row) in rows.iter().take(limit).enumerate() {
                    out.push(row.get::<String, _>(0));
                    if has_more && index + 1 == limit {
                        let key: Vec<Option<String>> =
                            (0..plan.key_columns).map(|k| row.get(k + 1)).collect();
                        last_key = Some(key);
                    }
                }
                let total = match total_mode {
                    TotalMode::None => None,
                    TotalMode::Capped(cap) => Some(count(conn, &plan, cap, named).await?),
                };
                Ok(ListPage {
                    rows: out,
                    last_key,
                    has_more,
                    total,
                })
            })
        })
        .await
    }

    /// The row of `object` whose key is `key` (one value per key column, in key order), as a
    /// JSON object; `None` when there is no such row.
    pub async fn catalog_get(
        &self,
        object: &CatalogObject,
        key: &[Value],
        budget: ReadBudget,
    ) -> Result<Option<String>> {
        if object.key.is_empty() || key.len() != object.key.len() {
            return Err(DbError::Schema(format!(
                "{} has no key of {} columns",
                object.name,
                key.len()
            )));
        }
        let mut binds = Vec::new();
        let mut clauses = Vec::new();
        for (&column, value) in object.key.iter().zip(key) {
            let condition = Condition {
                column,
                op: Op::Eq,
                value: value.clone(),
            };
            clauses.push(condition_sql(object, &condition, &mut binds));
        }
        let sql = format!(
            "SELECT row_to_json(o)::text FROM public.{} t CROSS JOIN LATERAL ({}) o WHERE {}",
            quote_ident(&object.name),
            render_select(object),
            clauses.join(" AND ")
        );
        // One statement by the object's key (its primary key or the unique index its refresh
        // needs): no transaction around it, see `Brotr::read_statement`.
        let named = self.named_statements();
        self.read_statement(budget.0, move |conn| {
            let sql = sql.clone();
            let binds = binds.clone();
            Box::pin(async move {
                let query = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds, named);
                let row = query.fetch_optional(&mut *conn).await?;
                Ok(row.map(|row| row.get::<String, _>(0)))
            })
        })
        .await
    }

    /// Whether the read side's statements are named and cached (see [`bind_all`]).
    fn named_statements(&self) -> bool {
        self.config().pool.limits.statement_cache_size > 0
    }

    /// Runs `op` in a `READ ONLY` transaction whose statements are bounded by `budget` on the
    /// server, and the whole by `budget` (plus a margin) on the client.
    async fn read_only<T, F>(&self, budget: ReadBudget, op: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut sqlx::PgConnection) -> crate::brotr::TxFuture<'c, T>,
    {
        self.transact_read_only(budget.0, op).await
    }
}

/// Whether `error` is PostgreSQL refusing a value (class 22, data exception: a value out of
/// range, a malformed date or JSON, an invalid regular expression) rather than failing.
pub fn is_data_error(error: &DbError) -> bool {
    matches!(error, DbError::Sqlx(sqlx::Error::Database(e))
        if e.code().is_some_and(|code| code.starts_with("22")))
}

/// The objects: tables (partitioned or not), views and materialized views of `public` the
/// connected role may SELECT, minus partitions and extension members. `is_view` also marks the
/// tables a `<name>_refresh()` maintains.
const DISCOVER_OBJECTS: &str = "\
SELECT c.oid::int8, c.relname::text,
       c.relkind IN ('v', 'm') OR EXISTS (
           SELECT 1 FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = c.relnamespace AND p.proname = c.relname || '_refresh'
             AND p.pronargs = 0)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
ORDER BY c.relname";

const DISCOVER_COLUMNS: &str = "\
SELECT a.attrelid::int8, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum";

/// The key of each object: its primary key, else its first unique, non-partial index on plain
/// columns (a materialized view's).
const DISCOVER_KEYS: &str = "\
SELECT DISTINCT ON (i.indrelid) i.indrelid::int8,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_catalog.pg_index i
WHERE i.indrelid = ANY($1::int8[]::oid[]) AND i.indisunique AND i.indpred IS NULL
  AND i.indexprs IS NULL
ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid";

/// The select list of `object` in the original's JSON shapes, over the table aliased `t`.
fn render_select(object: &CatalogObject) -> String {
    let parts: Vec<String> = object
        .columns
        .iter()
        .map(|column| {
            let source = format!("t.{}", quote_ident(&column.name));
            let expr = match column.kind {
                ColumnKind::Bytea => format!("encode({source}, 'hex')"),
                ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Timestamptz => {
                    format!("{source}::text")
                }
                ColumnKind::Numeric => format!("{source}::float8"),
                _ => source,
            };
            format!("{expr} AS {}", quote_ident(&column.name))
        })
        .collect();
    format!("SELECT {}", parts.join(", "))
}

/// The page order: the sort column (if any), then the key's columns not already in it, all in
/// the sort's direction. Without a key, only the sort column (pages are then not stable).
fn order_terms(
    object: &CatalogObject,
    sort: Option<(usize, Direction)>,
) -> Vec<(usize, Direction)> {
    let direction = sort.map_or(Direction::Asc, |(_, d)| d);
    let mut order: Vec<(usize, Direction)> = sort.into_iter().collect();
    for &column in &object.key {
        if !order.iter().any(|(c, _)| *c == column) {
            order.push((column, direction));
        }
    }
    order
}

#[derive(Debug, Clone)]
struct ListPlan {
    data: String,
    data_binds: Vec<Value>,
    /// `SELECT 1 FROM t WHERE …` (the count's source) and its binds.
    filtered: String,
    filter_binds: Vec<Value>,
    has_conditions: bool,
    table: String,
    key_columns: usize,
}

fn list_sql(
    object: &CatalogObject,
    query: &ListQuery,
    order: &[(usize, Direction)],
) -> Result<ListPlan> {
    let table = format!("public.{}", quote_ident(&object.name));
    let mut binds = Vec::new();
    let mut clauses: Vec<String> = query
        .conditions
        .iter()
        .map(|condition| condition_sql(object, condition, &mut binds))
        .collect();
    let filter_binds = binds.clone();
    let filtered = if clauses.is_empty() {
        format!("SELECT 1 FROM {table} t")
    } else {
        format!("SELECT 1 FROM {table} t WHERE {}", clauses.join(" AND "))
    };
    if let Some(after) = &query.after {
        if after.len() != order.len() {
            return Err(DbError::Schema(format!(
                "keyset position has {} values, the order {}",
                after.len(),
                order.len()
            )));
        }
        clauses.push(keyset_sql(object, order, after, &mut binds));
    }
    let order_by = if order.is_empty() {
        String::new()
    } else {
        let terms: Vec<String> = order
            .iter()
            .map(|(c, d)| {
                format!(
                    "t.{} {}",
                    quote_ident(&object.columns[*c].name),
                    match d {
                        Direction::Asc => "ASC",
                        Direction::Desc => "DESC",
                    }
                )
            })
            .collect();
        format!(" ORDER BY {}", terms.join(", "))
    };
    // The page's rows are chosen first (filters, order, limit, offset) and only they are
    // rendered: rendered in the same query level, the JSON is computed for every row the plan
    // reads before the limit applies (every row an OFFSET skips, every row an explicit sort
    // takes in). The outer ORDER BY costs no sort: the subquery's rows already come in it.
    let mut page = format!("SELECT t.* FROM {table} t");
    if !clauses.is_empty() {
        page.push_str(" WHERE ");
        page.push_str(&clauses.join(" AND "));
    }
    page.push_str(&order_by);
    // One row more than the page says whether another page follows.
    page.push_str(&format!(
        " LIMIT {} OFFSET {}",
        u64::from(query.limit) + 1,
        query.offset
    ));
    let data = format!(
        "SELECT row_to_json(o)::text{} FROM ({page}) t CROSS JOIN LATERAL ({}) o{order_by}",
        order
            .iter()
            .map(|(c, _)| format!(", t.{}::text", quote_ident(&object.columns[*c].name)))
            .collect::<String>(),
        render_select(object)
    );
    Ok(ListPlan {
        data,
        data_binds: binds,
        filtered,
        filter_binds,
        has_conditions: !query.conditions.is_empty(),
        table,
        key_columns: order.len(),
    })
}

/// `t.col op $n` for one condition; pushes its bind.
fn condition_sql(object: &CatalogObject, condition: &Condition, binds: &mut Vec<Value>) -> String {
    let column = &object.columns[condition.column];
    let name = format!("t.{}", quote_ident(&column.name));
    binds.push(condition.value.clone());
    let param = format!("${}", binds.len());
    let cast = match (&condition.value, column.kind) {
        (_, ColumnKind::TextArray) => "::text".to_owned(),
        (Value::Bytes(_), _) | (Value::Float(_), _) | (Value::Bool(_), _) => String::new(),
        _ => format!("::{}", column.pg_type),
    };
    match (condition.op, column.kind) {
        (Op::Eq, ColumnKind::TextArray) => format!("{name} @> ARRAY[{param}{cast}]"),
        (Op::Contains, _) => format!("{name} @> {param}{cast}"),
        (op, _) => {
            let op = match op {
                Op::Eq => "=",
                Op::Gt => ">",
                Op::Lt => "<",
                Op::Ge => ">=",
                Op::Le => "<=",
                Op::ILike => "ILIKE",
                Op::Contains => "@>",
            };
            format!("{name} {op} {param}{cast}")
        }
    }
}

/// "After this position" in `order`: a row comparison when every order column is non-null (an
/// index can serve it), the explicit expansion when the first (the sort column) may be NULL
/// (NULLs sort last ascending, first descending, as PostgreSQL does by default).
fn keyset_sql(
    object: &CatalogObject,
    order: &[(usize, Direction)],
    after: &[Option<String>],
    binds: &mut Vec<Value>,
) -> String {
    let direction = order.first().map_or(Direction::Asc, |(_, d)| *d);
    let first = &object.columns[order[0].0];
    if !first.nullable {
        return row_after(object, order, after, direction, binds);
    }
    let first_name = format!("t.{}", quote_ident(&first.name));
    let rest = &order[1..];
    let rest_values = &after[1..];
    let tail = |binds: &mut Vec<Value>| -> String {
        if rest.is_empty() {
            return "FALSE".to_owned();
        }
        binds.push(Value::Text(after[0].clone().unwrap_or_default()));
        let equal = format!("{first_name} = ${}::{}", binds.len(), first.pg_type);
        let rest = row_after(object, rest, rest_values, direction, binds);
        format!("({equal} AND {rest})")
    };
    match (&after[0], direction) {
        (Some(_), Direction::Asc) => {
            let head = row_after(object, &order[..1], &after[..1], direction, binds);
            let tail = tail(binds);
            format!("({head} OR {first_name} IS NULL OR {tail})")
        }
        (Some(_), Direction::Desc) => {
            let head = row_after(object, &order[..1], &after[..1], direction, binds);
            let tail = tail(binds);
            format!("({head} OR {tail})")
        }
        (None, Direction::Asc) if rest.is_empty() => "FALSE".to_owned(),
        (None, Direction::Asc) => {
            let rest = row_after(object, rest, rest_values, direction, binds);
            format!("({first_name} IS NULL AND {rest})")
        }
        (None, Direction::Desc) if rest.is_empty() => format!("{first_name} IS NOT NULL"),
        (None, Direction::Desc) => {
            let rest = row_after(object, rest, rest_values, direction, binds);
            format!("({first_name} IS NOT NULL OR ({first_name} IS NULL AND {rest}))")
        }
    }
}

/// `(c1, c2, …) > ($a::t1, $b::t2, …)` (`<` descending) over non-null columns.
fn row_after(
    object: &CatalogObject,
    terms: &[(usize, Direction)],
    values: &[Option<String>],
    direction: Direction,
    binds: &mut Vec<Value>,
) -> String {
    let cmp = match direction {
        Direction::Asc => ">",
        Direction::Desc => "<",
    };
    let mut names = Vec::new();
    let mut params = Vec::new();
    for ((column, _), value) in terms.iter().zip(values) {
        let column = &object.columns[*column];
        names.push(format!("t.{}", quote_ident(&column.name)));
        binds.push(Value::Text(value.clone().unwrap_or_default()));
        params.push(format!("${}::{}", binds.len(), column.pg_type));
    }
    format!("({}) {cmp} ({})", names.join(", "), params.join(", "))
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `binds` in order. `named`: the statement is prepared under a name and cached per
/// connection (`pool.limits.statement_cache_size` > 0); otherwise it is unnamed, like every other
/// statement of this crate (`persistent(false)`: sqlx would otherwise prepare it under a name
/// and, with the cache off, never close it).
fn bind_all<'q>(mut query: PgQuery<'q>, binds: &[Value], named: bool) -> PgQuery<'q> {
    query = query.persistent(named);
    for value in binds {
        query = match value {
            Value::Int(v) => query.bind(*v),
            Value::Float(v) => query.bind(*v),
            Value::Bool(v) => query.bind(*v),
            Value::Bytes(v) => query.bind(v.clone()),
            Value::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

/// The count of a list: exact up to `cap` rows (a bounded scan), past it the planner's estimate
/// (table statistics without filters, `EXPLAIN` with them), never below the cap.
async fn count(
    conn: &mut sqlx::PgConnection,
    plan: &ListPlan,
    cap: u64,
    named: bool,
) -> Result<Total, sqlx::Error> {
    if cap > 0 {
        let sql = format!(
            "SELECT count(*)::int8 FROM ({} LIMIT {}) s",
            plan.filtered,
            cap.saturating_add(1)
        );
        let counted: i64 = bind_all(sqlx::query(AssertSqlSafe(sql)), &plan.filter_binds, named)
            .fetch_one(&mut *conn)
            .await?
            .get(0);
        let counted = counted.max(0) as u64;
        if counted <= cap {
            return Ok(Total {
                value: counted,
                exact: true,
            });
        }
    }
    let estimate: f64 = if plan.has_conditions {
        let sql = format!("EXPLAIN (FORMAT JSON) {}", plan.filtered);
        let explained: serde_json::Value =
            bind_all(sqlx::query(AssertSqlSafe(sql)), &plan.filter_binds, named)
                .fetch_one(&mut *conn)
                .await?
                .get(0);
        explained
            .pointer("/0/Plan/Plan Rows")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    } else {
        // reltuples of a partitioned table's leaf partitions, else of the table itself (-1 =
        // never analysed). Not both: ANALYZE of a partitioned table sets its own reltuples to
        // the sum of its partitions'.
        let sql = "SELECT COALESCE(\
                       (SELECT sum(GREATEST(c.reltuples, 0)) \
                        FROM pg_catalog.pg_partition_tree($1::regclass) p \
                        JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE p.isleaf), \
                       (SELECT GREATEST(c.reltuples, 0) FROM pg_catalog.pg_class c \
                        WHERE c.oid = $1::regclass), \
                       0)::float8";
        sqlx::query(sql)
            .persistent(named)
            .bind(&plan.table)
            .fetch_one(&mut *conn)
            .await?
            .get(0)
    };
    Ok(Total {
        value: (estimate.max(0.0) as u64).max(cap.saturating_add(1)),
        exact: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> CatalogObject {
        let column = |name: &str, pg_type: &str, nullable: bool| Column {
            name: name.into(),
            pg_type: pg_type.into(),
            kind: ColumnKind::of(pg_type),
            nullable,
        };
        CatalogObject {
            name: "relay_stats".into(),
            is_view: true,
            columns: vec![
                column("relay_url", "text", false),
                column("avg_rtt_open", "numeric", true),
                column("id", "bytea", false),
            ],
            key: vec![0],
        }
    }

    #[test]
    fn types_map_to_kinds() {
        assert_eq!(
            ColumnKind::of("integer"),
            ColumnKind::Integer {
                min: i32::MIN.into(),
                max: i32::MAX.into()
            }
        );
        assert_eq!(ColumnKind::of("character varying(20)"), ColumnKind::Text);
        assert_eq!(ColumnKind::of("numeric(10,2)"), ColumnKind::Numeric);
        assert_eq!(ColumnKind::of("text[]"), ColumnKind::TextArray);
        assert_eq!(ColumnKind::of("tsvector"), ColumnKind::Other);
        assert!(!ColumnKind::of("jsonb").orderable());
        assert!(ColumnKind::of("jsonb").filterable());
        assert!(!ColumnKind::of("json").filterable());
    }

    #[test]
    fn the_order_ends_with_the_key_in_the_sort_direction() {
        let object = object();
        assert_eq!(order_terms(&object, None), vec![(0, Direction::Asc)]);
        assert_eq!(
            order_terms(&object, Some((1, Direction::Desc))),
            vec![(1, Direction::Desc), (0, Direction::Desc)]
        );
        assert_eq!(
            order_terms(&object, Some((0, Direction::Desc))),
            vec![(0, Direction::Desc)]
        );
    }

    #[test]
    fn identifiers_are_quoted_and_values_bound() {
        let object = object();
        let query = ListQuery {
            conditions: vec![Condition {
                column: 0,
                op: Op::ILike,
                value: Value::Text("'; DROP TABLE relay; --".into()),
            }],
            sort: Some((1, Direction::Asc)),
            after: Some(vec![Some("1.5".into()), Some("wss://a".into())]),
            limit: 10,
            offset: 0,
            total: TotalMode::None,
        };
        let order = order_terms(&object, query.sort);
        let plan = list_sql(&object, &query, &order).unwrap();
        assert!(!plan.data.contains("DROP"), "{}", plan.data);
        assert!(
            plan.data.contains(r#"t."relay_url" ILIKE $1::text"#),
            "{}",
            plan.data
        );
        assert!(
            plan.data.contains(r#"encode(t."id", 'hex') AS "id""#),
            "{}",
            plan.data
        );
        assert!(
            plan.data
                .contains(r#"t."avg_rtt_open"::float8 AS "avg_rtt_open""#)
        );
        // A nullable sort column: the expanded keyset condition (NULLs last ascending).
        assert!(
            plan.data.contains(r#"t."avg_rtt_open" IS NULL OR"#),
            "{}",
            plan.data
        );
        // The page is cut before its rows are rendered, and kept in order outside.
        assert!(
            plan.data.contains(
                r#"ORDER BY t."avg_rtt_open" ASC, t."relay_url" ASC LIMIT 11 OFFSET 0) t CROSS JOIN LATERAL"#
            ),
            "{}",
            plan.data
        );
        assert!(
            plan.data
                .ends_with(r#") o ORDER BY t."avg_rtt_open" ASC, t."relay_url" ASC"#),
            "{}",
            plan.data
        );
        assert_eq!(plan.data_binds.len(), 4, "{:?}", plan.data_binds);
    }
}
