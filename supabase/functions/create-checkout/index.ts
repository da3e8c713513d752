import { corsHeaders } from "../_shared/cors.ts";

Deno.serve(async (req) => {
  if (req.method === "OPTIONS") return new Response("ok", { headers: corsHeaders });
  return new Response(JSON.stringify({ function: "create-checkout", ok: true }), {
    headers: { ...corsHeaders, "Content-Type": "application/json" },
  });
});
