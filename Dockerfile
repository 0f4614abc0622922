# Multi-stage build: compile in the Rust image, run from a slim Debian.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
# Compiled into the binary: the console's files and the demo's data set.
COPY console ./console
COPY testdata/demo ./testdata/demo
RUN cargo build --release --locked --bin consolidator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 consolidator
COPY --from=build /src/target/release/consolidator /usr/local/bin/consolidator
USER consolidator
ENTRYPOINT ["consolidator"]
CMD ["all"]
