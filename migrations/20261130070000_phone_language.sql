-- A number's own language (issue 11: a migrant's `LANG RU` by SMS turned the family's USSD
-- menus at home into Russian). A number that chose a language (the USSD language screen,
-- `LANG` by SMS) keeps it here; one that did not speaks the household's. Every message to
-- a number, and every screen it is shown, is in coalesce(phones.language,
-- households.language, the service's default).
alter table phones add column language text check (language in ('tg', 'ru', 'en'));
