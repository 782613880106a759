"""What real systems write when they refuse a write with a conflict (classify stage, data only).

Each entry names the system, a pattern for its text, the cause it means, the real text as the
system writes it (tests classify exactly this text) and where that text is documented. Patterns
are RE2 over the normalised text (`ingest.texts`: CamelCase, snake_case and dotted class names
split into lowercase words), so `ConditionalCheckFailedException` is matched as "conditional
check failed exception"; they are lowercased and `_` reads as a space. Users add entries in
`conflictradar.toml` (`[[classify.catalogue]]`); theirs are tried first.
"""

from __future__ import annotations

from dataclasses import dataclass

from conflictradar.ingest.causes import Cause

V, D, L, S = (
    Cause.VERSION_MISMATCH,
    Cause.DUPLICATE_CREATE,
    Cause.RESOURCE_LOCKED,
    Cause.STATE_CONFLICT,
)


@dataclass(frozen=True)
class Entry:
    system: str
    name: str  # the system's name for the error (code, SQLSTATE, exception class)
    pattern: str
    cause: Cause
    example: str  # the real text, as the system writes it
    source: str  # where the text is documented

    @property
    def label(self) -> str:
        return f"{self.system} {self.name}".strip()


CATALOGUE: tuple[Entry, ...] = (
    # -- SQL databases: SQLSTATE and driver error numbers -------------------------------------
    Entry("PostgreSQL", "23505 unique_violation",
          r"duplicate key value violates unique constraint|\b23505\b|unique violation", D,
          'ERROR: duplicate key value violates unique constraint "users_email_key"',
          "https://www.postgresql.org/docs/current/errcodes-appendix.html"),
    Entry("PostgreSQL", "40001 serialization_failure",
          r"could not serialize access due to (concurrent update|read/write dependencies)"
          r"|\b40001\b|serialization failure", V,
          "ERROR: could not serialize access due to concurrent update",
          "https://www.postgresql.org/docs/current/transaction-iso.html"),
    Entry("PostgreSQL", "55P03 lock_not_available",
          r"could not obtain lock on (row|relation)|\b55P03\b|lock not available", L,
          'ERROR: could not obtain lock on row in relation "orders"',
          "https://www.postgresql.org/docs/current/errcodes-appendix.html"),
    Entry("MySQL", "1062 ER_DUP_ENTRY", r"duplicate entry '.*' for key|er dup entry", D,
          "Duplicate entry 'ada@example.com' for key 'users.email'",
          "https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html"),
    Entry("MySQL", "1205 ER_LOCK_WAIT_TIMEOUT", r"lock wait timeout exceeded|er lock wait timeout",
          L, "Lock wait timeout exceeded; try restarting transaction",
          "https://mariadb.com/docs/server/reference/error-codes/mariadb-error-codes-1200-to-1299/e1205"),
    Entry("MySQL", "1213 ER_LOCK_DEADLOCK",
          r"deadlock found when trying to get lock|er lock deadlock", L,
          "Deadlock found when trying to get lock; try restarting transaction",
          "https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html"),
    Entry("SQL Server", "2627/2601 duplicate key",
          r"cannot insert duplicate key (row )?in object|violation of (primary|unique) key", D,
          "Violation of UNIQUE KEY constraint 'UQ_users_email'. Cannot insert duplicate key in"
          " object 'dbo.users'. The duplicate key value is (ada@example.com).",
          "https://learn.microsoft.com/en-us/sql/relational-databases/errors-events/database-engine-events-and-errors"),
    Entry("SQL Server", "1205 deadlock victim",
          r"was deadlocked on lock resources with another process", L,
          "Transaction (Process ID 52) was deadlocked on lock resources with another process and"
          " has been chosen as the deadlock victim. Rerun the transaction.",
          "https://learn.microsoft.com/en-us/sql/relational-databases/errors-events/mssqlserver-1205-database-engine-error"),
    Entry("Oracle Database", "ORA-00001", r"ORA-00001|unique constraint \(.*\) violated", D,
          "ORA-00001: unique constraint (SHOP.USERS_EMAIL_UK) violated",
          "https://docs.oracle.com/en/error-help/db/ora-00001/"),
    Entry("Oracle Database", "ORA-00054", r"ORA-00054|resource busy and acquire with NOWAIT", L,
          "ORA-00054: resource busy and acquire with NOWAIT specified or timeout expired",
          "https://docs.oracle.com/en/error-help/db/ora-00054/"),
    Entry("SQLite", "SQLITE_CONSTRAINT_UNIQUE",
          r"UNIQUE constraint failed|sqlite constraint (unique|primarykey)", D,
          "UNIQUE constraint failed: users.email", "https://www.sqlite.org/rescode.html"),
    Entry("SQLite", "SQLITE_BUSY", r"database is locked|sqlite busy", L,
          "database is locked", "https://www.sqlite.org/rescode.html"),
    Entry("CockroachDB", "40001 restart transaction",
          r"restart transaction: transaction ?retry|write ?too ?old ?error"
          r"|read ?within ?uncertainty ?interval",
          V, "restart transaction: TransactionRetryWithProtoRefreshError: WriteTooOldError",
          "https://www.cockroachlabs.com/docs/stable/transaction-retry-error-reference"),
    # -- ORMs and frameworks: optimistic locking ----------------------------------------------
    Entry("Hibernate", "StaleObjectStateException",
          r"stale ?object ?state ?exception|row was updated or deleted by another transaction",
          V, "org.hibernate.StaleObjectStateException: Row was updated or deleted by another"
          " transaction (or unsaved-value mapping was incorrect) : [com.shop.Order#42]",
          "https://docs.jboss.org/hibernate/orm/6.1/javadocs/org/hibernate/StaleStateException.html"),
    Entry("Spring", "ObjectOptimisticLockingFailureException",
          r"optimistic ?locking ?failure|optimistic locking failed", V,
          "org.springframework.orm.ObjectOptimisticLockingFailureException: Object of class"
          " [com.shop.Order] with identifier [42]: optimistic locking failed",
          "https://docs.spring.io/spring-framework/docs/6.0.16/javadoc-api/org/springframework/orm/ObjectOptimisticLockingFailureException.html"),
    Entry("Jakarta Persistence", "OptimisticLockException",
          r"optimistic ?lock ?exception", V,
          "jakarta.persistence.OptimisticLockException: Batch update returned unexpected row"
          " count from update [0]; actual row count: 0; expected: 1",
          "https://jakarta.ee/specifications/persistence/3.1/apidocs/jakarta.persistence/jakarta/persistence/optimisticlockexception"),
    Entry("Entity Framework Core", "DbUpdateConcurrencyException",
          r"db update concurrency exception|expected to affect \d+ row\(s\), but actually"
          r" affected \d+ row\(s\)", V,
          "Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException: The database operation"
          " was expected to affect 1 row(s), but actually affected 0 row(s); data may have been"
          " modified or deleted since entities were loaded.",
          "https://learn.microsoft.com/dotnet/api/microsoft.entityframeworkcore.dbupdateconcurrencyexception"),
    Entry("Ruby on Rails", "ActiveRecord::StaleObjectError",
          r"stale object error|attempted to update a stale object", V,
          "ActiveRecord::StaleObjectError: Attempted to update a stale object: Order.",
          "https://api.rubyonrails.org/classes/ActiveRecord/StaleObjectError.html"),
    Entry("Ruby on Rails", "ActiveRecord::RecordNotUnique", r"record not unique", D,
          "ActiveRecord::RecordNotUnique: PG::UniqueViolation",
          "https://api.rubyonrails.org/classes/ActiveRecord/RecordNotUnique.html"),
    Entry("Sequelize", "SequelizeOptimisticLockError",
          r"optimistic ?lock ?error|attempting to update a stale model instance", V,
          "SequelizeOptimisticLockError: Attempting to update a stale model instance: Order",
          "https://sequelize.org/api/v6/class/src/errors/optimistic-lock-error.js~optimisticlockerror"),
    Entry("Prisma", "P2002", r"\bP2002\b|unique constraint failed on the", D,
          "P2002: Unique constraint failed on the fields: (`email`)",
          "https://www.prisma.io/docs/orm/reference/error-reference#p2002"),
    Entry("Prisma", "P2034", r"\bP2034\b|transaction failed due to a write conflict", V,
          "P2034: Transaction failed due to a write conflict or a deadlock. Please retry your"
          " transaction", "https://www.prisma.io/docs/orm/reference/error-reference#p2034"),
    Entry("Django", "IntegrityError (unique)", r"integrity error.*(unique|duplicate)", D,
          'django.db.utils.IntegrityError: UNIQUE constraint failed: shop_user.email',
          "https://docs.djangoproject.com/en/5.0/ref/exceptions/#database-exceptions"),
    # -- document and search stores -----------------------------------------------------------
    Entry("MongoDB", "E11000 duplicate key", r"E11000|duplicate key error", D,
          'E11000 duplicate key error collection: shop.users index: email_1 dup key:'
          ' { email: "ada@example.com" }',
          "https://www.mongodb.com/docs/manual/core/index-unique/"),
    Entry("MongoDB", "112 WriteConflict", r"write ?conflict", V,
          "WriteConflict error: this operation conflicted with another operation. Please retry"
          " your operation or multi-document transaction.",
          "https://www.mongodb.com/docs/manual/core/transactions-production-consideration/"),
    # A create (`op_type=create`) of an id that exists: Elasticsearch calls it a version
    # conflict and says so ("version"), so SPEC 5's cause order reads it as version_mismatch
    # before the "already exists" of duplicate_create; the label still says it was a create.
    Entry("Elasticsearch", "version_conflict_engine_exception (create)",
          r"version conflict, document already exists", V,
          "[9f3a]: version conflict, document already exists (current version [1])",
          "https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-index_.html"),
    Entry("Elasticsearch", "version_conflict_engine_exception",
          r"version ?conflict ?engine ?exception|version conflict, (current|required)", V,
          "[orders][42]: version conflict, current version [3] is different than the one"
          " provided [2]",
          "https://www.elastic.co/guide/en/elasticsearch/reference/current/optimistic-concurrency-control.html"),
    Entry("Elasticsearch", "resource_already_exists_exception",
          r"resource ?already ?exists ?exception", D,
          "resource_already_exists_exception: index [orders/kN2x] already exists",
          "https://www.elastic.co/guide/en/elasticsearch/reference/current/indices-create-index.html"),
    Entry("Apache CouchDB", "409 conflict", r"document update conflict", V,
          '{"error":"conflict","reason":"Document update conflict."}',
          "https://docs.couchdb.org/en/stable/api/document/common.html"),
    Entry("Amazon DynamoDB", "ConditionalCheckFailedException",
          r"conditional ?check ?failed|the conditional request failed", V,
          "ConditionalCheckFailedException: The conditional request failed",
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html"),
    Entry("Amazon DynamoDB", "TransactionConflictException",
          r"transaction ?conflict ?exception|transaction is ongoing for the item", L,
          "TransactionConflictException: Transaction is ongoing for the item",
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html"),
    Entry("Azure Cosmos DB", "409 Conflict",
          r"resource with specified id or name already exists", D,
          "Resource with specified id or name already exists.",
          "https://learn.microsoft.com/en-us/rest/api/cosmos-db/http-status-codes-for-cosmosdb"),
    Entry("Neo4j", "ConstraintValidationFailed",
          r"constraint ?validation ?failed|already exists with label", D,
          "Neo.ClientError.Schema.ConstraintValidationFailed: Node(0) already exists with label"
          " `User` and property `email` = 'ada@example.com'",
          "https://neo4j.com/docs/status-codes/current/errors/all-errors/"),
    # -- orchestrators -------------------------------------------------------------------------
    Entry("Kubernetes API", "409 Conflict (resourceVersion)",
          r"the object has been modified; please apply your changes to the latest version", V,
          'Operation cannot be fulfilled on deployments.apps "web": the object has been'
          " modified; please apply your changes to the latest version and try again",
          "https://kubernetes.io/docs/reference/using-api/api-concepts/#conflicts"),
    Entry("Kubernetes API", "409 AlreadyExists", r'^[a-z0-9 ]+ "[^"]+" already exists$', D,
          'pods "web-0" already exists',
          "https://kubernetes.io/docs/reference/using-api/api-concepts/"),
    Entry("Docker Engine API", "409 container name in use",
          r"container name .* is already in use by container", D,
          'Conflict. The container name "/web" is already in use by container "4f3a9c2e". You'
          " have to remove (or rename) that container to be able to reuse that name.",
          "https://docs.docker.com/reference/api/engine/version/v1.47/#tag/Container/operation/ContainerCreate"),
    # -- cloud storage and cloud APIs ----------------------------------------------------------
    Entry("Azure Blob Storage", "ContainerAlreadyExists / BlobAlreadyExists",
          r"(container|blob) ?already ?exists", D,
          "ContainerAlreadyExists: The specified container already exists.",
          "https://learn.microsoft.com/en-us/rest/api/storageservices/blob-service-error-codes"),
    Entry("Azure Blob Storage", "LeaseIdMissing / LeaseAlreadyPresent",
          r"lease ?id ?missing|lease ?already ?present|there is currently a lease on the", L,
          "LeaseIdMissing: There is currently a lease on the blob and no lease ID was specified"
          " in the request.",
          "https://learn.microsoft.com/en-us/rest/api/storageservices/blob-service-error-codes"),
    Entry("Azure Blob Storage", "ContainerBeingDeleted",
          r"container ?being ?deleted|the specified container is being deleted", S,
          "ContainerBeingDeleted: The specified container is being deleted.",
          "https://learn.microsoft.com/en-us/rest/api/storageservices/blob-service-error-codes"),
    Entry("Amazon S3", "BucketAlreadyExists / BucketAlreadyOwnedByYou",
          r"bucket ?already ?(exists|owned ?by ?you)|requested bucket name is not available", D,
          "BucketAlreadyExists: The requested bucket name is not available. The bucket namespace"
          " is shared by all users of the system. Select a different name and try again.",
          "https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html"),
    Entry("Amazon S3", "OperationAborted",
          r"operation ?aborted|conflicting conditional operation is currently in progress", L,
          "OperationAborted: A conflicting conditional operation is currently in progress"
          " against this resource. Try again.",
          "https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html"),
    Entry("Amazon S3", "BucketNotEmpty", r"bucket ?not ?empty|bucket you tried to delete is not"
          r" empty", S, "BucketNotEmpty: The bucket you tried to delete is not empty.",
          "https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html"),
    Entry("AWS Lambda", "ResourceConflictException",
          r"resource ?conflict ?exception|an update is in progress for resource", L,
          "ResourceConflictException: The operation cannot be performed at this time. An update"
          " is in progress for resource: arn:aws:lambda:eu-west-1:123456789012:function:orders",
          "https://docs.aws.amazon.com/lambda/latest/api/CommonErrors.html"),
    Entry("Google Cloud APIs", "ABORTED", r"^(rpc error: code = )?aborted\b", V,
          "ABORTED: Too much contention on these documents. Please try again.",
          "https://cloud.google.com/apis/design/errors"),
    Entry("Google Cloud APIs", "ALREADY_EXISTS", r"^already exists:", D,
          "ALREADY_EXISTS: Document already exists: projects/shop/databases/(default)/documents/"
          "users/ada", "https://cloud.google.com/apis/design/errors"),
    Entry("Azure Resource Manager", "AnotherOperationInProgress / ScopeLocked",
          r"another ?operation ?in ?progress|scope ?locked", L,
          "AnotherOperationInProgress: Another operation on this or dependent resource is in"
          " progress.",
          "https://learn.microsoft.com/en-us/azure/azure-resource-manager/troubleshooting/common-deployment-errors"),
    # -- payment and SaaS APIs -----------------------------------------------------------------
    Entry("Stripe", "charge_already_refunded", r"charge ?already ?refunded", S,
          "charge_already_refunded: The charge you're attempting to refund has already been"
          " refunded.", "https://docs.stripe.com/error-codes"),
    Entry("Stripe", "idempotency_key_in_use", r"idempotency ?key ?in ?use", L,
          "idempotency_key_in_use: There is currently another in-progress request using this"
          " Idempotent Key (that probably means you submitted twice, and the other request is"
          " still going through): 8f3a. Please try again later.",
          "https://docs.stripe.com/error-codes"),
    Entry("PayPal", "TRANSACTION_ALREADY_REFUNDED / ORDER_ALREADY_CAPTURED",
          r"transaction ?already ?refunded|order ?already ?captured", S,
          "TRANSACTION_ALREADY_REFUNDED: Refund transaction refused - this transaction has"
          " already been refunded.",
          "https://developer.paypal.com/api/deprecated/payments/v1/errors/transaction_already_refunded"),
    Entry("GitHub REST API", "409 head branch modified",
          r"head branch was modified|merge conflict", V,
          "Head branch was modified. Review and try the merge again.",
          "https://docs.github.com/en/rest/pulls/pulls#merge-a-pull-request"),
    Entry("Auth0 Management API", "409 user already exists", r"the user already exists", D,
          "The user already exists.",
          "https://auth0.com/docs/api/management/v2/users/post-users"),
    Entry("Terraform", "state lock", r"error acquiring the state lock", L,
          "Error acquiring the state lock: state blob is already locked",
          "https://developer.hashicorp.com/terraform/language/state/locking"),
    Entry("Keycloak Admin API", "409 user exists", r"user exists with same (username|email)", D,
          "User exists with same username",
          "https://www.keycloak.org/docs-api/latest/rest-api/index.html"),
)  # fmt: skip


def systems() -> list[str]:
    """The distinct systems the catalogue covers."""
    return sorted({e.system for e in CATALOGUE})
