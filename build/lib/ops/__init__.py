"""Operations toolkit for one app running on several Supabase projects."""
