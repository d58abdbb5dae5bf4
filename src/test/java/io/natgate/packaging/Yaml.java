package io.natgate.packaging;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLGenerator;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Manifests as plain ordered maps: what kubectl sees, with no model class dropping or reordering fields. */
final class Yaml {
  private static final YAMLMapper YAML = YAMLMapper.builder(YAMLFactory.builder()
          .disable(YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
          .disable(YAMLGenerator.Feature.SPLIT_LINES)
          .enable(YAMLGenerator.Feature.MINIMIZE_QUOTES)
          .enable(YAMLGenerator.Feature.ALWAYS_QUOTE_NUMBERS_AS_STRINGS)
          .enable(YAMLGenerator.Feature.INDENT_ARRAYS_WITH_INDICATOR).build())
      .build();
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private Yaml() {
  }

  /** Every document of a YAML file, in order (empty documents skipped). */
  static List<Map<String, Object>> readAll(Path file) {
    try {
      return readAll(Files.readString(file));
    } catch (IOException e) {
      throw new UncheckedIOException(file.toString(), e);
    }
  }

  static List<Map<String, Object>> readAll(String text) {
    try (var parser = YAML.getFactory().createParser(text)) {
      List<Map<String, Object>> docs = new ArrayList<>();
      YAML.readValues(parser, new TypeReference<Map<String, Object>>() { }).forEachRemaining(d -> {
        if (d != null) {
          docs.add(d);
        }
      });
      return docs;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A document that is a list of objects (alm-examples). */
  static List<Map<String, Object>> readList(String text) {
    try {
      return YAML.readValue(text, new TypeReference<List<Map<String, Object>>>() { });
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Map<String, Object> readOne(Path file) {
    List<Map<String, Object>> docs = readAll(file);
    if (docs.size() != 1) {
      throw new IllegalArgumentException(file + ": expected one document, found " + docs.size());
    }
    return docs.get(0);
  }

  /** A map that keeps the order its keys are given in, so that generated files are stable. */
  static Map<String, Object> map(Object... keysAndValues) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < keysAndValues.length; i += 2) {
      m.put((String) keysAndValues[i], keysAndValues[i + 1]);
    }
    return m;
  }

  static String write(Object tree) {
    try {
      return YAML.writeValueAsString(tree);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static String json(Object tree) {
    try {
      return JSON.writeValueAsString(tree);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The map at a path of keys ({@code at(csv, "spec", "install")}), or an exception naming the path. */
  @SuppressWarnings("unchecked")
  static Map<String, Object> at(Map<String, Object> tree, String... keys) {
    Object node = tree;
    for (String key : keys) {
      node = node instanceof Map<?, ?> m ? m.get(key) : null;
      if (node == null) {
        throw new IllegalArgumentException("no " + String.join(".", keys));
      }
    }
    return (Map<String, Object>) node;
  }

  @SuppressWarnings("unchecked")
  static List<Map<String, Object>> list(Map<String, Object> tree, String key) {
    Object value = tree.get(key);
    return value == null ? List.of() : (List<Map<String, Object>>) value;
  }

  static String string(Map<String, Object> tree, String... keys) {
    Map<String, Object> parent = keys.length == 1 ? tree : at(tree, java.util.Arrays.copyOf(keys, keys.length - 1));
    return (String) parent.get(keys[keys.length - 1]);
  }
}
