import { useState } from "preact/hooks";
import { signIn } from "../api.js";
import { ErrorBox, Field } from "../ui.js";

/** The admin token is checked against the API before it is kept (for this tab only). */
export function SignIn() {
  const [value, setValue] = useState("");
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    await signIn(value.trim()).catch(setError);
  };
  return (
    <main id="main" class="signin">
      <h1>Manifold console</h1>
      <form onSubmit={submit}>
        <Field label="Admin token" hint="Kept in this tab only (session storage), sent as a bearer token.">
          {(id) => <input id={id} type="password" autocomplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />}
        </Field>
        <button type="submit">Sign in</button>
      </form>
      <ErrorBox error={error} />
    </main>
  );
}
