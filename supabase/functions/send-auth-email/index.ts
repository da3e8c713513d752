import { sendEmail } from "../_shared/email.ts";

Deno.serve(async (req) => {
  const { email } = await req.json();
  return await sendEmail(email, "send-auth-email", "<p>Hello</p>");
});
