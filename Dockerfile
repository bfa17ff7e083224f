# One image for the studio web app and its GPU workers (docker-compose.yml runs both).
# PyPI's torch wheels for Linux carry their CUDA runtime; the host needs only the NVIDIA driver
# and the NVIDIA Container Toolkit for the workers' GPU reservation.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BARK_STUDIO_HOME=/workspace

RUN apt-get update \
 && apt-get install -y --no-install-recommends sox libsox-fmt-all libsndfile1 ffmpeg espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so a code change does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p studio workers models && touch studio/__init__.py workers/__init__.py models/__init__.py \
 && pip install -e ".[postgres]" && rm -rf studio workers models
COPY studio ./studio
COPY workers ./workers
COPY models ./models
COPY static ./static
RUN pip install --no-deps -e .

VOLUME ["/workspace"]
EXPOSE 7860
CMD ["bark-studio", "serve", "--host", "0.0.0.0", "--no-worker"]
