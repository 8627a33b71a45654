FROM python:3.11-slim
WORKDIR /app
# The runtime lock (hash-checked), then the package alone: no demo, no tests.
COPY requirements/runtime.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY config ./config
RUN pip install --no-cache-dir --no-deps . && useradd --system --no-create-home exporter
USER exporter
EXPOSE 10113
ENTRYPOINT ["readiness-exporter"]
CMD ["run", "--config", "/app/config/example.yml", "--web.listen-address", "0.0.0.0:10113"]
