"""Response shapes of the Discourse endpoints the sandbox serves (generated, then kept by hand).

Each dict holds every field that the official OpenAPI document (``specs/discourse/openapi.json``,
discourse/discourse_api_docs) marks *required* for that response, with a neutral default; the
sandbox copies one and fills in the values it knows. Keeping all required fields is what lets
the sandbox's answers validate against the spec, which forbids additional properties on most
of these objects.
"""

from __future__ import annotations

from typing import Any

USER_SHOW: dict[str, Any] = {
    "id": 0, "username": "", "name": "", "avatar_template": "", "last_posted_at": None, "last_seen_at": None,
    "created_at": "", "ignored": False, "muted": False, "can_ignore_user": False, "can_mute_user": False,
    "can_send_private_messages": False, "can_send_private_message_to_user": False, "trust_level": 0,
    "moderator": False, "admin": False, "title": None, "badge_count": 0, "custom_fields": {}, "time_read": 0,
    "recent_time_read": 0, "primary_group_id": None, "primary_group_name": None, "flair_group_id": None,
    "flair_name": None, "flair_url": None, "flair_bg_color": None, "flair_color": None,
    "featured_topic": {"id": 0, "title": "", "fancy_title": "", "slug": "", "posts_count": 0}, "staged": False,
    "can_edit": False, "can_edit_username": False, "can_edit_email": False, "can_edit_name": False,
    "uploaded_avatar_id": None, "has_title_badges": False, "pending_count": 0, "profile_view_count": 0,
    "second_factor_enabled": False, "can_upload_profile_header": False, "can_upload_user_card_background": False,
    "post_count": 0, "topic_count": 0, "can_be_deleted": False, "can_delete_all_posts": False, "locale": None,
    "muted_category_ids": [], "regular_category_ids": [], "watched_tags": [], "watching_first_post_tags": [],
    "tracked_tags": [], "muted_tags": [], "tracked_category_ids": [], "watched_category_ids": [],
    "watched_first_post_category_ids": [], "system_avatar_upload_id": None, "system_avatar_template": "",
    "muted_usernames": [], "ignored_usernames": [], "allowed_pm_usernames": [], "mailing_list_posts_per_day": 0,
    "can_change_bio": False, "can_change_location": False, "can_change_website": False,
    "can_change_tracking_preferences": False, "user_api_keys": None, "user_auth_tokens": [],
    "user_notification_schedule": {
        "enabled": False, "day_0_start_time": 0, "day_0_end_time": 0, "day_1_start_time": 0, "day_1_end_time": 0,
        "day_2_start_time": 0, "day_2_end_time": 0, "day_3_start_time": 0, "day_3_end_time": 0, "day_4_start_time": 0,
        "day_4_end_time": 0, "day_5_start_time": 0, "day_5_end_time": 0, "day_6_start_time": 0, "day_6_end_time": 0,
    },
    "use_logo_small_as_avatar": False, "featured_user_badge_ids": [], "invited_by": None, "groups": [],
    "group_users": [],
    "user_option": {
        "user_id": 0, "mailing_list_mode": False, "mailing_list_mode_frequency": 0, "email_digests": False,
        "email_level": 0, "email_messages_level": 0, "external_links_in_new_tab": False, "color_scheme_id": None,
        "dark_scheme_id": None, "dynamic_favicon": False, "enable_quoting": False, "enable_smart_lists": False,
        "enable_markdown_monospace_font": False, "digest_after_minutes": 0, "automatically_unpin_topics": False,
        "auto_track_topics_after_msecs": 0, "notification_level_when_replying": 0, "new_topic_duration_minutes": 0,
        "email_previous_replies": 0, "email_in_reply_to": False, "like_notification_frequency": 0,
        "notify_on_linked_posts": False, "push_notification_level": "",
        "enable_upcoming_change_available_notifications": False, "include_tl0_in_digests": False, "theme_ids": [],
        "theme_key_seq": 0, "allow_private_messages": False, "enable_allowed_pm_users": False, "homepage_id": None,
        "hide_profile_and_presence": False, "hide_profile": False, "hide_presence": False, "text_size": "",
        "text_size_seq": 0, "title_count_mode": "", "timezone": None, "skip_new_user_tips": False,
        "topics_unread_when_closed": False, "interface_color_mode": 0, "show_original_content": False,
        "send_shortcut": "", "automatically_translate": False, "understood_languages": [],
    },
}

USER_GROUP: dict[str, Any] = {
    "id": 0, "automatic": False, "name": "", "display_name": "", "user_count": 0, "mentionable_level": 0,
    "messageable_level": 0, "visibility_level": 0, "primary_group": False, "title": None, "grant_trust_level": None,
    "incoming_email": None, "has_messages": False, "flair_url": None, "flair_bg_color": None, "flair_color": None,
    "bio_raw": None, "bio_cooked": None, "bio_excerpt": None, "public_admission": False, "public_exit": False,
    "allow_membership_requests": False, "full_name": None, "default_notification_level": 0,
    "membership_request_template": None, "members_visibility_level": 0, "can_see_members": False,
    "can_admin_group": False, "publish_read_state": False,
}

ADMIN_USER: dict[str, Any] = {
    "id": 0, "username": "", "name": None, "avatar_template": "", "active": False, "admin": False, "moderator": False,
    "last_seen_at": None, "last_emailed_at": None, "created_at": "", "last_seen_age": None, "last_emailed_age": None,
    "created_at_age": None, "trust_level": 0, "manual_locked_trust_level": None, "title": None, "time_read": 0,
    "staged": False, "days_visited": 0, "posts_read_count": 0, "topics_entered": 0, "post_count": 0,
    "can_send_activation_email": False, "can_activate": False, "can_deactivate": False, "ip_address": "",
    "registration_ip_address": None, "can_grant_admin": False, "can_revoke_admin": False,
    "can_grant_moderation": False, "can_revoke_moderation": False, "can_impersonate": False, "like_count": 0,
    "like_given_count": 0, "topic_count": 0, "flags_given_count": 0, "flags_received_count": 0,
    "private_topics_count": 0, "can_delete_all_posts": False, "can_be_anonymized": False, "can_be_merged": False,
    "full_suspend_reason": None, "primary_group_id": None, "badge_count": 0, "warnings_received_count": 0,
    "bounce_score": None, "reset_bounce_score_after": None, "can_view_action_logs": False,
    "can_disable_second_factor": False, "can_delete_sso_record": False, "api_key_count": 0,
    "single_sign_on_record": None, "approved_by": None, "suspended_by": None, "silenced_by": None, "groups": [],
    "external_ids": {}, "include_ip": False,
}

ADMIN_USER_LIST_ITEM: dict[str, Any] = {
    "id": 0, "username": "", "name": None, "avatar_template": "", "active": False, "admin": False, "moderator": False,
    "last_seen_at": None, "last_emailed_at": None, "created_at": "", "last_seen_age": None, "last_emailed_age": None,
    "created_at_age": None, "trust_level": 0, "manual_locked_trust_level": None, "title": None, "time_read": 0,
    "staged": False, "days_visited": 0, "posts_read_count": 0, "topics_entered": 0, "post_count": 0,
}

GROUP_SHOW: dict[str, Any] = {
    "id": 0, "automatic": False, "name": "", "mentionable_level": 0, "messageable_level": 0, "visibility_level": 0,
    "primary_group": False, "title": None, "grant_trust_level": None, "incoming_email": None, "has_messages": False,
    "flair_url": None, "flair_bg_color": None, "flair_color": None, "bio_raw": None, "bio_cooked": None,
    "bio_excerpt": None, "public_admission": False, "public_exit": False, "allow_membership_requests": False,
    "full_name": None, "default_notification_level": 0, "membership_request_template": None, "is_group_user": False,
    "members_visibility_level": 0, "can_see_members": False, "can_admin_group": False, "publish_read_state": False,
    "is_group_owner_display": False, "mentionable": False, "messageable": False,
    "automatic_membership_email_domains": None, "smtp_server": None, "smtp_port": None, "smtp_ssl_mode": None,
    "email_username": None, "email_password": None, "message_count": 0, "allow_unknown_sender_topic_replies": False,
    "watching_category_ids": [], "tracking_category_ids": [], "watching_first_post_category_ids": [],
    "regular_category_ids": [], "muted_category_ids": [],
}

GROUP_MEMBER: dict[str, Any] = {
    "id": 0, "username": "", "name": None, "avatar_template": "", "title": None, "last_posted_at": "",
    "last_seen_at": "", "added_at": "", "timezone": "",
}

POST_CREATED: dict[str, Any] = {
    "id": 0, "name": None, "username": "", "avatar_template": "", "created_at": "", "cooked": "", "post_number": 0,
    "post_type": 0, "posts_count": 0, "updated_at": "", "reply_count": 0, "reply_to_post_number": None,
    "quote_count": 0, "incoming_link_count": 0, "reads": 0, "readers_count": 0, "score": 0.0, "yours": False,
    "topic_id": 0, "topic_slug": "", "display_username": None, "primary_group_name": None, "flair_name": None,
    "flair_url": None, "flair_bg_color": None, "flair_color": None, "version": 0, "can_edit": False,
    "can_delete": False, "can_recover": False, "can_wiki": False, "user_title": None, "bookmarked": False,
    "actions_summary": [], "moderator": False, "admin": False, "staff": False, "user_id": 0, "draft_sequence": 0,
    "hidden": False, "trust_level": 0, "deleted_at": None, "user_deleted": False, "edit_reason": None,
    "can_view_edit_history": False, "wiki": False, "reviewable_id": None, "reviewable_score_count": 0,
    "reviewable_score_pending_count": 0, "post_url": "",
}

POST_SHOW: dict[str, Any] = {
    "id": 0, "username": "", "avatar_template": "", "created_at": "", "cooked": "", "post_number": 0, "post_type": 0,
    "posts_count": 0, "updated_at": "", "reply_count": 0, "reply_to_post_number": None, "quote_count": 0,
    "incoming_link_count": 0, "reads": 0, "readers_count": 0, "score": 0.0, "yours": False, "topic_id": 0,
    "topic_slug": "", "primary_group_name": None, "flair_name": None, "flair_url": None, "flair_bg_color": None,
    "flair_color": None, "version": 0, "can_edit": False, "can_delete": False, "can_recover": False,
    "can_wiki": False, "user_title": None, "bookmarked": False, "raw": "", "actions_summary": [], "moderator": False,
    "admin": False, "staff": False, "user_id": 0, "hidden": False, "trust_level": 0, "deleted_at": None,
    "user_deleted": False, "edit_reason": None, "can_view_edit_history": False, "wiki": False, "reviewable_id": None,
    "reviewable_score_count": 0, "reviewable_score_pending_count": 0, "post_url": "",
}

LATEST_POST: dict[str, Any] = {
    "id": 0, "name": None, "username": "", "avatar_template": "", "created_at": "", "cooked": "", "post_number": 0,
    "post_type": 0, "posts_count": 0, "updated_at": "", "reply_count": 0, "reply_to_post_number": None,
    "quote_count": 0, "incoming_link_count": 0, "reads": 0, "readers_count": 0, "score": 0.0, "yours": False,
    "topic_id": 0, "topic_slug": "", "topic_title": "", "topic_html_title": "", "category_id": 0,
    "display_username": None, "primary_group_name": None, "flair_name": None, "flair_url": None,
    "flair_bg_color": None, "flair_color": None, "flair_group_id": None, "badges_granted": [], "version": 0,
    "can_edit": False, "can_delete": False, "can_recover": False, "can_see_hidden_post": False, "can_wiki": False,
    "user_title": None, "bookmarked": False, "raw": "", "actions_summary": [], "moderator": False, "admin": False,
    "staff": False, "user_id": 0, "hidden": False, "trust_level": 0, "deleted_at": None, "user_deleted": False,
    "edit_reason": None, "can_view_edit_history": False, "wiki": False, "excerpt": "", "truncated": False,
    "reviewable_id": None, "reviewable_score_count": 0, "reviewable_score_pending_count": 0, "post_url": "",
}

CATEGORY: dict[str, Any] = {
    "id": 0, "name": "", "color": "", "text_color": "", "style_type": "", "emoji": None, "icon": None, "slug": "",
    "topic_count": 0, "post_count": 0, "position": 0, "description": None, "description_text": None,
    "description_excerpt": None, "topic_url": None, "read_restricted": False, "permission": 0,
    "notification_level": 0, "can_edit": False, "topic_template": None, "topic_title_placeholder": None,
    "has_children": False, "subcategory_count": None, "sort_order": None, "sort_ascending": None,
    "show_subcategory_list": False, "num_featured_topics": 0, "default_view": None, "subcategory_list_style": "",
    "default_top_period": "", "default_list_filter": "", "minimum_required_tags": 0,
    "navigate_to_first_post_after_read": False, "topics_day": 0, "topics_week": 0, "topics_month": 0,
    "topics_year": 0, "topics_all_time": 0, "subcategory_ids": [], "uploaded_logo": None, "uploaded_logo_dark": None,
    "uploaded_background": None, "uploaded_background_dark": None,
}

# The topic view (GET /t/{id}.json), a post of its post_stream, a topic of a topic list (/c/{slug}/{id}.json).
TOPIC_VIEW: dict[str, Any] = {
    "post_stream": {"posts": [], "stream": []}, "timeline_lookup": [], "suggested_topics": [], "tags": [],
    "tags_descriptions": {}, "id": 0, "title": "", "fancy_title": "", "posts_count": 0, "created_at": "", "views": 0,
    "reply_count": 0, "like_count": 0, "last_posted_at": None, "visible": False, "closed": False, "archived": False,
    "has_summary": False, "archetype": "", "slug": "", "category_id": 0, "word_count": None, "deleted_at": None,
    "user_id": 0, "featured_link": None, "pinned_globally": False, "pinned_at": None, "pinned_until": None,
    "image_url": None, "slow_mode_seconds": 0, "draft": None, "draft_key": "", "draft_sequence": 0, "unpinned": None,
    "pinned": False, "highest_post_number": None, "deleted_by": None, "has_deleted": False, "actions_summary": [],
    "chunk_size": 0, "bookmarked": False, "bookmarks": [], "topic_timer": None, "message_bus_last_id": 0,
    "participant_count": 0, "show_read_indicator": False, "thumbnails": None, "slow_mode_enabled_until": None,
    "details": {
        "can_edit": False, "notification_level": 0, "can_move_posts": False, "can_delete": False,
        "can_remove_allowed_users": False, "can_create_post": False, "can_reply_as_new_topic": False,
        "can_convert_topic": False, "can_review_topic": False, "can_close_topic": False, "can_archive_topic": False,
        "can_split_merge_topic": False, "can_edit_staff_notes": False, "can_toggle_topic_visibility": False,
        "can_pin_unpin_topic": False, "can_moderate_category": False, "can_remove_self_id": 0,
        "created_by": {"id": 0, "username": "", "name": "", "avatar_template": ""},
        "last_poster": {"id": 0, "username": "", "name": "", "avatar_template": ""},
    },
}
TOPIC_POST: dict[str, Any] = {
    "id": 0, "name": "", "username": "", "avatar_template": "", "created_at": "", "cooked": "", "post_number": 0,
    "post_type": 0, "updated_at": "", "reply_count": 0, "reply_to_post_number": None, "quote_count": 0,
    "incoming_link_count": 0, "reads": 0, "readers_count": 0, "score": 0, "yours": False, "topic_id": 0,
    "topic_slug": "", "display_username": "", "primary_group_name": None, "flair_name": None, "flair_url": None,
    "flair_bg_color": None, "flair_color": None, "version": 0, "can_edit": False, "can_delete": False,
    "can_recover": False, "can_wiki": False, "link_counts": [], "read": False, "user_title": None,
    "bookmarked": False, "actions_summary": [], "moderator": False, "admin": False, "staff": False, "user_id": 0,
    "hidden": False, "trust_level": 0, "deleted_at": None, "user_deleted": False, "edit_reason": None,
    "can_view_edit_history": False, "wiki": False, "reviewable_id": 0, "reviewable_score_count": 0,
    "reviewable_score_pending_count": 0,
}
TOPIC_LIST_ITEM: dict[str, Any] = {
    "id": 0, "title": "", "fancy_title": "", "slug": "", "posts_count": 0, "reply_count": 0, "highest_post_number": 0,
    "image_url": None, "created_at": "", "last_posted_at": "", "bumped": False, "bumped_at": "", "archetype": "",
    "unseen": False, "pinned": False, "unpinned": None, "excerpt": "", "visible": False, "closed": False,
    "archived": False, "bookmarked": None, "liked": None, "views": 0, "like_count": 0, "has_summary": False,
    "last_poster_username": "", "category_id": 0, "pinned_globally": False, "featured_link": None, "posters": [],
}
