package io.natgate.peers;

import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.SecretBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * The key that authenticates peer heartbeats: 32 random bytes in the Secret {@value #SECRET}, created by the operator
 * when missing and read by every agent (its RBAC allows get on that one name).
 */
public final class PeerKey {
  public static final String SECRET = "natgate-peer-key";
  static final String FIELD = "key";
  static final int LENGTH = 32;

  private PeerKey() {
  }

  /** The key, or null when the Secret does not exist (yet). */
  public static byte[] read(KubernetesClient client, String namespace) {
    Secret s = client.secrets().inNamespace(namespace).withName(SECRET).get();
    if (s == null || s.getData() == null || s.getData().get(FIELD) == null) {
      return null;
    }
    byte[] key = Base64.getDecoder().decode(s.getData().get(FIELD));
    if (key.length < LENGTH) {
      throw new IllegalStateException("Secret " + namespace + "/" + SECRET + " holds a key of " + key.length
          + " bytes; at least " + LENGTH + " are needed");
    }
    return key;
  }

  /** Creates the Secret with a new random key unless it exists. */
  public static void ensure(KubernetesClient client, String namespace) {
    if (client.secrets().inNamespace(namespace).withName(SECRET).get() != null) {
      return;
    }
    byte[] key = new byte[LENGTH];
    new SecureRandom().nextBytes(key);
    try {
      client.secrets().inNamespace(namespace).resource(new SecretBuilder().withNewMetadata().withName(SECRET)
          .withNamespace(namespace).endMetadata().withType("Opaque")
          .addToData(FIELD, Base64.getEncoder().encodeToString(key)).build()).create();
    } catch (KubernetesClientException e) {
      if (e.getCode() != 409) { // another replica created it first
        throw e;
      }
    }
  }
}
