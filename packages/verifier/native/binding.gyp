{
  "targets": [
    {
      "target_name": "baton_es256",
      "sources": ["es256.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
