//! Content rules: WeChat limits, HTML sanitising, Advertising-Law compliance, structured output parsing.
