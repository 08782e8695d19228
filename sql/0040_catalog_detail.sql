-- Catalog detail: what the provider says about a model, kept for models no longer offered too.
ALTER TABLE models
    ADD COLUMN family         text,
    ADD COLUMN parameter_size text,   -- as the provider writes it: '7.6B'
    ADD COLUMN quantization   text,   -- 'Q4_K_M'
    ADD COLUMN lifecycle      text;   -- Bedrock: ACTIVE, or LEGACY (deprecated, still callable)
