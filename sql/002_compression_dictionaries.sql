-- zstd dictionaries trained per namespace. A stored value names its dictionary by id in its
-- header, so a dictionary is kept as long as any entry may use it: rows are never updated,
-- and a retrained namespace simply gets a new row.
CREATE TABLE compression_dictionaries (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY
               CHECK (id BETWEEN 1 AND 65535),
    namespace  text NOT NULL,
    data       bytea NOT NULL,
    samples    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compression_dictionaries_namespace ON compression_dictionaries (namespace, id DESC);
