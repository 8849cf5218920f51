"""Provider adapters: one module per provider, all behind ``base.Provider``."""
