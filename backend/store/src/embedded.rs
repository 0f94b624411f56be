pub struct EmbeddedStore;
