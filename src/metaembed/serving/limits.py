"""What one search may ask for; light to import, so the command line can show the defaults."""

MAX_IMAGE_BYTES = 10 * 2**20  # a query image, as sent (a scanned page is a few MB)
MAX_K = 1000  # results per query, the most any searcher allows
SERVICE_MAX_K = 100  # the service's default cap (`metaembed serve --max-k`)
MAX_FIRST_STAGE_K = 10_000  # first-stage shortlist per query
