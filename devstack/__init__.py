"""Development-only: local stand-ins for Supabase projects (servers, proxies, Management API) and the demo.

Never installed with the toolkit; the noxfile, bench and tests import it from the repo root.
"""
