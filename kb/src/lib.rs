//! Customer-service retrieval: keyword rules, jieba BM25, hybrid knowledge-base search, reply shaping.
