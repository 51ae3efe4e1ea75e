-- What an integration posts: `webhook` (the seed's signed JSON), `slack`, `teams`,
-- `discord` (digests in the platform's own format) or `template` (the user's body).
ALTER TABLE integrations ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
-- For chat kinds the URL is the credential: it is stored sealed here, and `url` holds only
-- its masked form (what listings, pages and logs show).
ALTER TABLE integrations ADD COLUMN sealed_url TEXT;
-- For `template`: the minijinja source and the content type of what it renders.
ALTER TABLE integrations ADD COLUMN template TEXT;
ALTER TABLE integrations ADD COLUMN content_type TEXT;
