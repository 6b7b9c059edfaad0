"""DashScope (Alibaba Cloud Model Studio): the only package that speaks DashScope's words."""
