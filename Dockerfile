# One image for every callworker process; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg espeak-ng \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 callworker
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY worker ./worker
COPY tasks ./tasks
COPY gotosim ./gotosim
COPY audio_prompts ./audio_prompts
RUN pip install --no-cache-dir .

USER callworker
ENV CALLWORKER_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["callworker"]
