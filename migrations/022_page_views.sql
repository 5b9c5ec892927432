-- Page views without cookies or personal data (issue 25, "conversion from the first visit"):
-- one counter per UTC day and site path, incremented by POST /api/pageviews. Nothing about the
-- visitor is kept: no address, no user agent, no identifier. The ops funnel's first step,
-- visitors, is the views of the landing page ("/").

-- +goose Up
CREATE TABLE page_views (
    day  date   NOT NULL,
    path text   NOT NULL CHECK (path LIKE '/%' AND length(path) <= 100),
    n    bigint NOT NULL DEFAULT 0 CHECK (n >= 0),
    PRIMARY KEY (day, path)
);

-- +goose Down
DROP TABLE page_views;
