FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models ./models
COPY worker ./worker
COPY webhooks ./webhooks
COPY sandbox ./sandbox
COPY cli ./cli
RUN pip install --no-cache-dir . flower
RUN useradd --create-home numbers && mkdir -p /tmp/prometheus && chown numbers /tmp/prometheus
USER numbers
EXPOSE 8000
CMD ["numbers", "web", "--host", "0.0.0.0"]
