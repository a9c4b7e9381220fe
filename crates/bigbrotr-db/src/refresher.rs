//! The refresher's calls: the start-up catalog check of the `<view>_refresh()` functions and the
//! refresh call itself, run with no statement timeout.
//!
//! The contract with the schema is only the functions: for every name V the refresher is given,
//! `public.V_refresh()` takes no argument and returns VOID. Whether V is a materialized view or
//! an incrementally maintained table is the migration's business.

use crate::Brotr;
use crate::brotr::check_identifier;
use crate::config::TimeoutCategory;
use crate::error::{DbError, Result};

/// The longest name whose refresh function, `<name>_refresh`, still fits PostgreSQL's 63-byte
/// identifiers (a longer one would be silently truncated to another function's name).
pub const MAX_REFRESH_NAME_LEN: usize = 63 - "_refresh".len();

/// What the catalog says about one name's `public.<name>_refresh()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFunction {
    /// A zero-argument function of that name exists and the connected role may execute it.
    Callable,
    /// No zero-argument function `public.<name>_refresh` exists.
    Missing,
    /// It exists, but the connected role has no EXECUTE privilege on it.
    NotExecutable,
}

/// The refresh function of `name`: `<name>_refresh`.
pub fn refresh_function_name(name: &str) -> String {
    format!("{name}_refresh")
}

/// Quotes an identifier as PostgreSQL's `quote_ident` / `format('%I')` do: wrapped in double
/// quotes, with embedded double quotes doubled. Callers check the name first anyway.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statement that refreshes `name`: `SELECT public."<name>_refresh"()`.
pub(crate) fn refresh_statement(name: &str) -> Result<String> {
    check_refresh_name(name)?;
    Ok(format!(
        "SELECT public.{}()",
        quote_ident(&refresh_function_name(name))
    ))
}

fn check_refresh_name(name: &str) -> Result<()> {
    check_identifier(name)?;
    if name.len() > MAX_REFRESH_NAME_LEN {
        return Err(DbError::InvalidIdentifier(name.to_owned()));
    }
    Ok(())
}

impl Brotr {
    /// Looks up `public.<name>_refresh()` (a plain function, no arguments) for every name, in
    /// order, and whether the connected role may execute it. One catalog query.
    pub async fn refresh_functions(&self, names: &[String]) -> Result<Vec<RefreshFunction>> {
        for name in names {
            check_refresh_name(name)?;
        }
        let names = names.to_vec();
        self.transact(TimeoutCategory::Query, move |conn| {
            let names = names.clone();
            Box::pin(async move {
                let rows: Vec<(bool, bool)> = sqlx::query_as(
                    "SELECT p.oid IS NOT NULL, \
                            COALESCE(has_function_privilege(p.oid, 'EXECUTE'), false) \
                     FROM unnest($1::text[]) WITH ORDINALITY AS v(name, ord) \
                     LEFT JOIN pg_catalog.pg_proc p \
                       ON p.pronamespace = 'public'::regnamespace \
                      AND p.proname = v.name || '_refresh' \
                      AND p.pronargs = 0 \
                      AND p.prokind = 'f' \
                     ORDER BY v.ord",
                )
                .persistent(false)
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(present, executable)| match (present, executable) {
                        (false, _) => RefreshFunction::Missing,
                        (true, false) => RefreshFunction::NotExecutable,
                        (true, true) => RefreshFunction::Callable,
                    })
                    .collect())
            })
        })
        .await
    }

    /// The consumers each name's refresh applies, from `analytics.object_consumer` (migration
    /// 0004): names that share a consumer wait for each other. `None` for a name the table does
    /// not list, and for every name on a database without the table (6.6.9's schema).
    pub async fn refresh_consumers(&self, names: &[String]) -> Result<Vec<Option<Vec<String>>>> {
        let names = names.to_vec();
        self.transact(TimeoutCategory::Query, move |conn| {
            let names = names.clone();
            Box::pin(async move {
                let known: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('analytics.object_consumer')::text")
                        .persistent(false)
                        .fetch_one(&mut *conn)
                        .await?;
                if known.is_none() {
                    return Ok(vec![None; names.len()]);
                }
                let rows: Vec<(Option<Vec<String>>,)> = sqlx::query_as(
                    "SELECT c.consumers FROM unnest($1::text[]) WITH ORDINALITY AS v(name, ord) \
                     LEFT JOIN analytics.object_consumer c ON c.object = v.name \
                     ORDER BY v.ord",
                )
                .persistent(false)
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows.into_iter().map(|(c,)| c).collect())
            })
        })
        .await
    }

    /// `SELECT public.<name>_refresh()` in a transaction of its own, with **no** statement
    /// timeout (neither `timeouts.refresh` nor `server_settings.statement_timeout` nor a role or
    /// database default applies): a refresh may take hours. The name is checked against
    /// `^[a-z_][a-z0-9_]*$` and quoted before it reaches SQL.
    pub async fn refresh(&self, name: &str) -> Result<()> {
        let sql = refresh_statement(name)?;
        self.transact_unbounded(TimeoutCategory::Refresh, refresh_op(sql))
            .await
    }
}

/// The transaction body of a refresh: runs `sql` (from [`refresh_statement`]) unprepared.
pub(crate) fn refresh_op(
    sql: String,
) -> impl for<'c> FnMut(&'c mut sqlx::PgConnection) -> crate::brotr::TxFuture<'c, ()> {
    move |conn| {
        let sql = sql.clone();
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_the_function_and_pin_the_schema() {
        assert_eq!(
            refresh_statement("event_stats").unwrap(),
            "SELECT public.\"event_stats_refresh\"()"
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn names_outside_the_rule_or_too_long_for_their_function_are_refused() {
        for bad in ["", "Event", "a-b", "x\"); DROP TABLE event; --", "1a"] {
            assert!(refresh_statement(bad).is_err(), "{bad}");
        }
        let longest = "a".repeat(MAX_REFRESH_NAME_LEN);
        assert_eq!(refresh_function_name(&longest).len(), 63);
        assert!(refresh_statement(&longest).is_ok());
        assert!(refresh_statement(&format!("{longest}a")).is_err());
    }
}
