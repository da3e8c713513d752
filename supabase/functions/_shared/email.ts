import { corsHeaders } from "./cors.ts";

export async function sendEmail(to: string, subject: string, html: string): Promise<Response> {
  // The real app calls its email provider here; the key lives in Supabase secrets.
  const body = JSON.stringify({ to, subject, html });
  return new Response(body, { headers: { ...corsHeaders, "Content-Type": "application/json" } });
}
