//! [`Catalog`] over Glue's API.

use super::convert::*;
use super::*;

#[async_trait]
impl Catalog for GlueCatalog {
    async fn create_namespace(
        &self,
        namespace: &NamespaceId,
        properties: Properties,
    ) -> Result<()> {
        self.create_database(namespace, properties).await
    }

    async fn list_namespaces(&self, zone: Option<Zone>) -> Result<Vec<NamespaceId>> {
        let mut pages = self
            .client
            .get_databases()
            .set_catalog_id(self.catalog_id.clone())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| glue_error("GetDatabases", "", e))?;
            for database in page.database_list() {
                let Some(parameters) = database.parameters() else {
                    continue;
                };
                if self.per_zone() {
                    let Some(z) = parameters.get(P_ZONE) else {
                        continue;
                    };
                    let z: Zone = z.parse()?;
                    if zone.is_some_and(|wanted| wanted != z) {
                        continue;
                    }
                    for key in parameters.keys() {
                        let Some(name) = key.strip_prefix(P_NAMESPACE_RECORD) else {
                            continue;
                        };
                        let namespace = NamespaceId::new(z, name)?;
                        if self.database_name(&namespace)? == database.name() {
                            out.push(namespace);
                        }
                    }
                    continue;
                }
                let (Some(z), Some(name)) = (parameters.get(P_ZONE), parameters.get(P_NAMESPACE))
                else {
                    continue;
                };
                let z: Zone = z.parse()?;
                let namespace = NamespaceId::new(z, name)?;
                // Only databases this catalog's template names: several
                // lakes (or test runs) can share one Glue catalog.
                if zone.is_none_or(|wanted| wanted == z)
                    && self.database_name(&namespace)? == database.name()
                {
                    out.push(namespace);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn drop_namespace(&self, namespace: &NamespaceId) -> Result<()> {
        if !self.list_tables(namespace).await?.is_empty() {
            return Err(LakeError::config(
                "namespace",
                format!("namespace {namespace} still has tables"),
            ));
        }
        if self.per_zone() {
            let _serialised = self.update_lock.lock().await;
            let (name, mut parameters) = self.zone_database(namespace).await?;
            let key = format!("{P_NAMESPACE_RECORD}{}", namespace.name);
            if parameters.remove(&key).is_none() {
                return Err(LakeError::not_found(format!("namespace {namespace}")));
            }
            return self.put_database_parameters(&name, parameters).await;
        }
        match self
            .client
            .delete_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(self.database_name(namespace)?)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(LakeError::not_found(format!("namespace {namespace}")))
            }
            Err(e) => Err(glue_error("DeleteDatabase", namespace, e)),
        }
    }

    async fn create_table(&self, definition: TableDefinition) -> Result<TableDefinition> {
        definition.check_partition_keys()?;
        let mut definition = definition;
        definition.schema_version = 1;
        let table = definition.id.clone();
        let input = self.table_input(&definition, Utc::now())?;
        let database = self.database_name(&table.namespace_id())?;
        if self.per_zone() && !self.namespace_recorded(&table.namespace_id()).await? {
            // Creating a table creates its namespace.
            match self
                .add_namespace_record(&table.namespace_id(), Properties::new())
                .await
            {
                Ok(()) | Err(LakeError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for attempt in 0..2 {
            match self
                .client
                .create_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_input(input.clone())
                .send()
                .await
            {
                Ok(_) => return Ok(definition),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    return Err(LakeError::AlreadyExists {
                        what: format!("table {table}"),
                    });
                }
                Err(e)
                    if attempt == 0
                        && e.as_service_error()
                            .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    // Creating a table creates its namespace.
                    match self
                        .create_database(&table.namespace_id(), Properties::new())
                        .await
                    {
                        Ok(()) | Err(LakeError::AlreadyExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(glue_error("CreateTable", &table, e)),
            }
        }
        Err(LakeError::not_found(format!(
            "namespace {} (created, then gone again)",
            table.namespace_id()
        )))
    }

    async fn get_table(&self, table: &TableId) -> Result<TableDefinition> {
        let glue = self.glue_table(table).await?;
        definition_from_glue(table, &glue)
    }

    async fn list_tables(&self, namespace: &NamespaceId) -> Result<Vec<TableId>> {
        if self.per_zone() && !self.namespace_recorded(namespace).await? {
            return Err(LakeError::not_found(format!("namespace {namespace}")));
        }
        let mut pages = self
            .client
            .get_tables()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(namespace)?)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Err(LakeError::not_found(format!("namespace {namespace}")));
                }
                Err(e) => return Err(glue_error("GetTables", namespace, e)),
            };
            for table in page.table_list() {
                let parameters = table.parameters();
                // With a database per zone, the zone's other namespaces
                // share the database.
                if self.per_zone()
                    && parameters
                        .and_then(|p| p.get(P_NAMESPACE))
                        .map(String::as_str)
                        != Some(namespace.name.as_str())
                {
                    continue;
                }
                let name = parameters
                    .and_then(|p| p.get(P_NAME))
                    .map(String::as_str)
                    .unwrap_or(table.name());
                out.push(TableId::new(namespace.zone, namespace.name.as_str(), name)?);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn update_table(&self, table: &TableId, update: TableUpdate) -> Result<TableDefinition> {
        let _serialised = self.update_lock.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(definition) = self.update_once(table, &update).await? {
                return Ok(definition);
            }
            tracing::debug!(%table, attempt, "Glue UpdateTable lost a race; retrying");
            tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
        }
        Err(LakeError::CommitConflict {
            table: table.to_string(),
            message: format!("Glue table still contended after {MAX_ATTEMPTS} attempts"),
            retryable: true,
        })
    }

    async fn drop_table(&self, table: &TableId) -> Result<()> {
        match self
            .client
            .delete_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .name(self.table_name(table)?)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(missing_table(table))
            }
            Err(e) => Err(glue_error("DeleteTable", table, e)),
        }
    }

    async fn add_partitions(
        &self,
        table: &TableId,
        partitions: Vec<Partition>,
    ) -> Result<AddPartitions> {
        let definition = self.get_table(table).await?;
        for partition in &partitions {
            partition.check_arity(&definition)?;
        }
        let database = self.database_name(&table.namespace_id())?;
        let mut outcome = AddPartitions::default();
        let mut failures = Vec::new();
        for chunk in partitions.chunks(CREATE_CHUNK) {
            let inputs = chunk
                .iter()
                .map(|p| {
                    let mut input = PartitionInput::builder()
                        .set_values(Some(
                            p.values.iter().map(|v| v.as_str().to_string()).collect(),
                        ))
                        .storage_descriptor(
                            storage_descriptor(definition.format, p.location.as_str(), false)
                                .build(),
                        );
                    if let Some(stats) = &p.stats {
                        input = input
                            .parameters("numRows", stats.row_count.to_string())
                            .parameters("numFiles", stats.file_count.to_string())
                            .parameters("totalSize", stats.size_bytes.to_string());
                    }
                    input.build()
                })
                .collect();
            let out = self
                .client
                .batch_create_partition()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_name(self.table_name(table)?)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| glue_error("BatchCreatePartition", table, e))?;
            let mut present = 0;
            for error in out.errors() {
                let detail = error.error_detail();
                let code = detail.and_then(|d| d.error_code()).unwrap_or_default();
                if code == "AlreadyExistsException" {
                    present += 1;
                } else {
                    failures.push(format!(
                        "[{}]: {code} {}",
                        error.partition_values().join(", "),
                        detail.and_then(|d| d.error_message()).unwrap_or_default()
                    ));
                }
            }
            outcome.already_present += present;
            outcome.added += chunk.len() - out.errors().len();
        }
        if failures.is_empty() {
            Ok(outcome)
        } else {
            Err(LakeError::other(
                "glue catalog",
                format!(
                    "BatchCreatePartition {table}: {} of {} partitions failed \
                     ({} added, {} already present; adding again is safe): {}",
                    failures.len(),
                    partitions.len(),
                    outcome.added,
                    outcome.already_present,
                    failures.join("; ")
                ),
            ))
        }
    }

    async fn list_partitions(
        &self,
        table: &TableId,
        filter: &PartitionFilter,
    ) -> Result<Vec<Partition>> {
        let definition = self.get_table(table).await?;
        filter.check_keys(&definition.partition_keys)?;
        let mut pages = self
            .client
            .get_partitions()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .table_name(self.table_name(table)?)
            .set_expression(glue_expression(&definition, filter))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| glue_error("GetPartitions", table, e))?;
            for glue in page.partitions() {
                let partition = partition_from_glue(table, glue)?;
                // The expression pushed down only the string keys; this
                // check is the filter's meaning for every key.
                if filter.matches(&definition.partition_keys, &partition.values)? {
                    out.push(partition);
                }
            }
        }
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }

    async fn drop_partitions(&self, table: &TableId, values: &[Vec<PartitionValue>]) -> Result<()> {
        let database = self.database_name(&table.namespace_id())?;
        for chunk in values.chunks(DELETE_CHUNK) {
            let lists = chunk
                .iter()
                .map(|v| {
                    PartitionValueList::builder()
                        .set_values(Some(v.iter().map(|v| v.as_str().to_string()).collect()))
                        .build()
                        .map_err(|e| glue_error("BatchDeletePartition", table, e))
                })
                .collect::<Result<Vec<_>>>()?;
            let out = self
                .client
                .batch_delete_partition()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_name(self.table_name(table)?)
                .set_partitions_to_delete(Some(lists))
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception())
                    {
                        missing_table(table)
                    } else {
                        glue_error("BatchDeletePartition", table, e)
                    }
                })?;
            // Absent partitions are ignored, as the trait says.
            let failures: Vec<String> = out
                .errors()
                .iter()
                .filter_map(|e| {
                    let detail = e.error_detail()?;
                    let code = detail.error_code().unwrap_or_default();
                    (code != "EntityNotFoundException").then(|| {
                        format!(
                            "[{}]: {code} {}",
                            e.partition_values().join(", "),
                            detail.error_message().unwrap_or_default()
                        )
                    })
                })
                .collect();
            if !failures.is_empty() {
                return Err(LakeError::other(
                    "glue catalog",
                    format!("BatchDeletePartition {table}: {}", failures.join("; ")),
                ));
            }
        }
        Ok(())
    }

    async fn schema_versions(&self, table: &TableId) -> Result<Vec<SchemaVersion>> {
        let mut pages = self
            .client
            .get_table_versions()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .table_name(self.table_name(table)?)
            .into_paginator()
            .send();
        let mut versions: Vec<SchemaVersion> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Err(missing_table(table));
                }
                Err(e) => return Err(glue_error("GetTableVersions", table, e)),
            };
            for version in page.table_versions() {
                let Some(glue) = version.table() else {
                    continue;
                };
                let definition = definition_from_glue(table, glue)?;
                if versions
                    .iter()
                    .all(|v| v.version != definition.schema_version)
                {
                    versions.push(SchemaVersion::new(
                        definition.schema_version,
                        definition.schema,
                        schema_created_at(glue)?,
                    ));
                }
            }
        }
        if versions.is_empty() {
            // An emulator or account that keeps no archive: the current one.
            let glue = self.glue_table(table).await?;
            let definition = definition_from_glue(table, &glue)?;
            versions.push(SchemaVersion::new(
                definition.schema_version,
                definition.schema,
                schema_created_at(&glue)?,
            ));
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    async fn grant(&self, grant: &lake_core::Grant) -> Result<bool> {
        self.glue_grant(grant).await
    }

    async fn revoke(&self, grant: &lake_core::Grant) -> Result<bool> {
        self.glue_revoke(grant).await
    }

    async fn list_grants(
        &self,
        principal: Option<&lake_core::Principal>,
    ) -> Result<Vec<lake_core::Grant>> {
        self.glue_list_grants(principal).await
    }
}
