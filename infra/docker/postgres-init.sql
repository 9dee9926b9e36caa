-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
-- One server, one database per service; each service migrates its own schema at start-up.
-- The no-Docker path (infra/stack.sh) creates the same three databases.
CREATE DATABASE order_db;
CREATE DATABASE product_db;
CREATE DATABASE payment_db;
