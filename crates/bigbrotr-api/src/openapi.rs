//! The OpenAPI 3.1 description, generated at start from the live catalog: every exposed table
//! with its columns and types (a row schema), its filters (one query parameter per filterable
//! column, with the operators its type allows), its sort keys, both paginations, and its
//! lookup path.

use bigbrotr_catalog::Catalog;
use bigbrotr_db::catalog::{CatalogObject, Column, ColumnKind};
use serde_json::{Value, json};

use crate::config::ApiConfig;

/// The JSON Schema of one column's rendered values.
fn column_schema(column: &Column) -> Value {
    let mut schema = match column.kind {
        ColumnKind::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        ColumnKind::Float | ColumnKind::Numeric => json!({"type": "number"}),
        ColumnKind::Bool => json!({"type": "boolean"}),
        ColumnKind::Text => json!({"type": "string"}),
        ColumnKind::Bytea => {
            json!({"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "hex"})
        }
        ColumnKind::Date => json!({"type": "string", "format": "date"}),
        ColumnKind::Timestamp | ColumnKind::Timestamptz => json!({"type": "string"}),
        ColumnKind::Json | ColumnKind::Jsonb => json!({}),
        ColumnKind::TextArray => json!({"type": "array", "items": {"type": "string"}}),
        ColumnKind::Other => json!({"type": "string"}),
    };
    if column.nullable
        && let Some(kind) = schema.get("type").cloned()
    {
        schema["type"] = json!([kind, "null"]);
    }
    schema["x-pg-type"] = json!(column.pg_type);
    schema
}

/// The operators a filter on `column` accepts.
fn operators(column: &Column) -> &'static str {
    match column.kind {
        ColumnKind::Text => "`value`, `=:`, `>:`, `<:`, `>=:`, `<=:`, `ILIKE:` (case-insensitive)",
        ColumnKind::Jsonb => "`value` (JSON equality), `@>:` (containment)",
        ColumnKind::TextArray => "`value`: the array contains this element",
        ColumnKind::Bool => "`value` (true/false)",
        _ => "`value`, `=:`, `>:`, `<:`, `>=:`, `<=:`",
    }
}

fn filter_parameter(column: &Column) -> Value {
    let hint = match column.kind {
        ColumnKind::Bytea => " Values are hex.",
        ColumnKind::Integer { .. } => " Values are integers.",
        _ => "",
    };
    json!({
        "name": column.name,
        "in": "query",
        "required": false,
        "description": format!(
            "Filter on `{}` ({}): {}.{hint} Repeat the parameter to AND several \
             conditions (a range).",
            column.name, column.pg_type, operators(column)
        ),
        "schema": {"type": "string"},
    })
}

fn row_name(object: &CatalogObject) -> String {
    format!("Row_{}", object.name)
}

fn list_operation(object: &CatalogObject, limits: &ApiConfig) -> Value {
    let sorts: Vec<String> = object
        .columns
        .iter()
        .filter(|c| c.kind.orderable())
        .flat_map(|c| {
            [
                c.name.clone(),
                format!("{}:asc", c.name),
                format!("{}:desc", c.name),
            ]
        })
        .collect();
    let mut parameters = vec![
        json!({"name": "limit", "in": "query", "required": false,
               "description": format!("Rows per page, clamped to 1..{}.", limits.max_page_size),
               "schema": {"type": "integer", "default": limits.default_page_size}}),
        json!({"name": "offset", "in": "query", "required": false,
               "description": "Rows to skip, clamped to 0..100000 (use `cursor` to go deeper).",
               "schema": {"type": "integer", "default": 0}}),
        json!({"name": "sort", "in": "query", "required": false,
               "description": "Sort column and direction; the key completes the order.",
               "schema": {"type": "string", "enum": sorts}}),
    ];
    if object.keyset_capable() {
        parameters.push(json!({"name": "cursor", "in": "query", "required": false,
            "description": "`meta.next_cursor` of the previous page: keyset pagination, \
                            no depth limit, stable while rows are inserted.",
            "schema": {"type": "string"}}));
    }
    parameters.extend(
        object
            .columns
            .iter()
            .filter(|c| c.kind.filterable())
            .map(filter_parameter),
    );
    json!({
        "summary": format!("List {}", object.name),
        "operationId": format!("list_{}", object.name),
        "tags": [object.name],
        "parameters": parameters,
        "responses": {
            "200": {"description": "A page", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{}", row_name(object))}},
                    "meta": {"$ref": "#/components/schemas/Meta"},
                },
                "required": ["data", "meta"],
            }}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "503": {"$ref": "#/components/responses/Busy"},
            "504": {"$ref": "#/components/responses/Timeout"},
        },
    })
}

fn lookup_operation(object: &CatalogObject) -> Value {
    let parameters: Vec<Value> = object
        .key
        .iter()
        .map(|&i| {
            let column = &object.columns[i];
            json!({"name": column.name, "in": "path", "required": true,
                   "description": format!("`{}` ({}); a value holding `/` is percent-encoded, \
                                           except a URL.", column.name, column.pg_type),
                   "schema": {"type": "string"}})
        })
        .collect();
    json!({
        "summary": format!("One row of {} by key", object.name),
        "operationId": format!("get_{}", object.name),
        "tags": [object.name],
        "parameters": parameters,
        "responses": {
            "200": {"description": "The row", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"data": {"$ref": format!("#/components/schemas/{}", row_name(object))}},
            }}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "503": {"$ref": "#/components/responses/Busy"},
            "504": {"$ref": "#/components/responses/Timeout"},
        },
    })
}

/// The whole document.
pub fn document(config: &ApiConfig, catalog: &Catalog) -> Value {
    let prefix = config.prefix();
    let exposed = catalog.exposed(&config.tables);
    let mut paths = serde_json::Map::new();
    let error = |description: &str| {
        json!({"description": description, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Error"}}}})
    };
    paths.insert(
        "/health".into(),
        json!({"get": {"summary": "Liveness and database reachability", "operationId": "health",
            "responses": {"200": {"description": "Serving", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"status": {"const": "ok"}}}}}},
                "503": {"description": "The database does not answer"}}}}),
    );
    paths.insert(
        format!("{prefix}/schema"),
        json!({"get": {"summary": "The exposed tables", "operationId": "schema_list",
            "responses": {"200": {"description": "Tables", "content": {"application/json": {
                "schema": {"type": "object"}}}}}}}),
    );
    paths.insert(
        format!("{prefix}/schema/{{table}}"),
        json!({"get": {"summary": "One table's columns and key", "operationId": "schema_table",
            "parameters": [{"name": "table", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The table", "content": {"application/json": {
                "schema": {"type": "object"}}}}, "404": {"$ref": "#/components/responses/NotFound"}}}}),
    );
    let mut schemas = serde_json::Map::new();
    for object in &exposed {
        paths.insert(
            format!("{prefix}/{}", object.name),
            json!({ "get": list_operation(object, config) }),
        );
        if !object.key.is_empty() {
            let template: String = object
                .key
                .iter()
                .map(|&i| format!("/{{{}}}", object.columns[i].name))
                .collect();
            paths.insert(
                format!("{prefix}/{}{template}", object.name),
                json!({ "get": lookup_operation(object) }),
            );
        }
        let properties: serde_json::Map<String, Value> = object
            .columns
            .iter()
            .map(|c| (c.name.clone(), column_schema(c)))
            .collect();
        let required: Vec<&str> = object.columns.iter().map(|c| c.name.as_str()).collect();
        schemas.insert(
            row_name(object),
            json!({"type": "object", "properties": properties, "required": required,
                   "x-primary-key": object.key_names(), "x-is-view": object.is_view}),
        );
    }
    schemas.insert(
        "Meta".into(),
        json!({"type": "object", "properties": {
            "total": {"type": "integer", "description": "Rows matching the filters: exact up to \
                      `exact_total_limit`, the planner's estimate past it (see total_exact)."},
            "total_exact": {"type": "boolean"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "table": {"type": "string"},
            "next_cursor": {"type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last."},
        }, "required": ["total", "limit", "offset", "table"]}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": config.title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read-only access to the observatory's tables. Every table route \
                            answers `{\"data\": …, \"meta\": …}`; errors are `{\"error\": …}`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "BadRequest": error("Invalid parameter, filter, sort or cursor"),
                "NotFound": error("Unknown or closed table, or no such row"),
                "Busy": error("Every query slot is taken; retry after the Retry-After delay"),
                "Timeout": error("The query exceeded request_timeout"),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use bigbrotr_catalog::TableAccess;

    use super::*;

    #[test]
    fn each_exposed_table_is_described() {
        let column = |name: &str, pg_type: &str, nullable: bool| Column {
            name: name.into(),
            pg_type: pg_type.into(),
            kind: ColumnKind::of(pg_type),
            nullable,
        };
        let catalog = Catalog::from_objects(vec![
            CatalogObject {
                name: "relay_metadata".into(),
                is_view: false,
                columns: vec![
                    column("relay_url", "text", false),
                    column("generated_at", "bigint", false),
                    column("metadata_type", "text", false),
                    column("metadata_id", "bytea", false),
                ],
                key: vec![0, 1, 2],
            },
            CatalogObject {
                name: "event".into(),
                is_view: false,
                columns: vec![column("id", "bytea", false)],
                key: vec![0],
            },
        ]);
        let mut config = ApiConfig::default();
        config.tables.insert(
            "relay_metadata".into(),
            TableAccess {
                enabled: true,
                price: 0,
            },
        );
        let doc = document(&config, &catalog);
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v1/relay_metadata"));
        assert!(
            paths.contains_key("/v1/relay_metadata/{relay_url}/{generated_at}/{metadata_type}")
        );
        assert!(
            !paths.keys().any(|p| p.contains("event")),
            "closed tables are not described"
        );
        let params = doc["paths"]["/v1/relay_metadata"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "limit",
                "offset",
                "sort",
                "cursor",
                "relay_url",
                "generated_at",
                "metadata_type",
                "metadata_id"
            ]
        );
        let row = &doc["components"]["schemas"]["Row_relay_metadata"];
        assert_eq!(row["properties"]["generated_at"]["type"], "integer");
        assert_eq!(row["properties"]["metadata_id"]["x-pg-type"], "bytea");
    }
}
